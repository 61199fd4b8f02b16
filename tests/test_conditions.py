"""Meter and key: windows on each meter's bar lines, meter changes, key estimates and labels, conditioning of G
and D, the style's mix, and names refused with the valid ones."""

import numpy as np
import pytest
import torch

from gancomposer.compose import Composer
from gancomposer.conditions import KEYS, Conditions, key_of, parse_key, parse_meter, transpose_key
from gancomposer.dataset import PrepareOptions, load_dataset, prepare
from gancomposer.errors import UserError
from gancomposer.io import read_file
from gancomposer.model import Condition, Discriminator, Generator, grid_features
from helpers import piece, write_piece

MAJOR, MINOR = [0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10]


def tune(tonic: int, scale: list[int], meter: tuple[int, int], bars: int, **kw):
    """A melody in quarter (or, in x/8, eighth) notes that dwells on the tonic triad of its key."""
    step = 4 / meter[1]
    per_bar = meter[0]
    degrees = [0, 2, 4, 2, 0, 4, 1, 6, 0, 3, 2, 1]
    notes = [(60 + tonic + scale[degrees[i % len(degrees)]], i * step, step) for i in range(bars * per_bar)]
    notes += [(48 + tonic, b * per_bar * step, per_bar * step) for b in range(bars)]  # the tonic in the bass
    return piece(notes, time_signature=meter, **kw)


@pytest.mark.parametrize("tonic,mode", [(2, "minor"), (6, "major"), (10, "major"), (9, "minor"), (0, "major"),
                                        (4, "minor")])
def test_key_estimate_on_pieces_with_a_known_key(tonic, mode):
    p = tune(tonic, MAJOR if mode == "major" else MINOR, (4, 4), 8)
    assert KEYS[key_of(p)] == f"{['C', 'C#', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B'][tonic]} {mode}"


def test_transposition_moves_the_key():
    assert KEYS[transpose_key(parse_key("D minor"), 3)] == "F minor"
    assert KEYS[transpose_key(parse_key("B major"), 2)] == "C# major"
    assert KEYS[transpose_key(parse_key("C major"), -1)] == "B major"


def test_names_are_parsed_or_refused_with_the_valid_ones():
    assert KEYS[parse_key("d minor")] == KEYS[parse_key("Dm")] == KEYS[parse_key("D min")] == "D minor"
    assert KEYS[parse_key("F#")] == "F# major" and KEYS[parse_key("Bb major")] == KEYS[parse_key("A# major")]
    for bad in ("H major", "D dorian", "", "D minor minor"):
        with pytest.raises(UserError, match="valid keys: C major, C# major"):
            parse_key(bad)
    assert parse_meter(" 6/8 ", [(2, 4), (6, 8)]) == 1
    with pytest.raises(UserError, match="its meters: 2/4, 6/8"):
        parse_meter("7/8", [(2, 4), (6, 8)])


def test_windows_of_3_4_and_6_8_pieces_start_on_bar_lines_and_hold_whole_bars(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    write_piece(folder / "waltz.mid", tune(7, MAJOR, (3, 4), 16))
    write_piece(folder / "jig.mid", tune(2, MAJOR, (6, 8), 16))
    write_piece(folder / "march.mid", tune(0, MAJOR, (4, 4), 16))
    prepare([str(folder)], tmp_path / "ds", options=PrepareOptions(valid_fraction=0, transpose=(-1, 1)),
            progress=False, log=lambda line: None)
    ds = load_dataset(tmp_path / "ds")
    cond = ds.conditions
    rows = {p["name"]: p for p in ds.manifest["pieces"]}
    for name, meter, bar in (("waltz.mid", (3, 4), 12), ("jig.mid", (6, 8), 12), ("march.mid", (4, 4), 16)):
        m = cond.meters.index(meter)
        assert cond.window_steps[m] % bar == 0  # whole bars: 5 of 3/4 or 6/8, 4 of 4/4
        n = list(rows).index(name)
        mine = ds.train_index[ds.train_index[:, 0] == n]
        assert len(mine) and (mine[:, 1] % bar == 0).all() and (mine[:, 3] == m).all()
        windows = ds.train[ds.train_index[:, 0] == n]
        assert not windows[:, cond.window_steps[m]:].any()  # stored padded, used at the meter's own length
    assert sorted(cond.window_steps) == [60, 60, 64]
    # the label follows each transposed copy: the piece's key moved by the shift
    for n, _, shift, _, key in ds.train_index:
        assert KEYS[key] == KEYS[transpose_key(parse_key(rows[list(rows)[n]]["key"]), shift)]
    assert {rows[k]["key"] for k in rows} == {"G major", "D major", "C major"}


def test_a_meter_change_splits_the_piece(tmp_path):
    first = tune(0, MAJOR, (4, 4), 8)
    second = tune(0, MAJOR, (3, 4), 8)
    both = piece(list(zip(np.r_[first.pitch, second.pitch], np.r_[first.start, second.start + 32],
                          np.r_[first.duration, second.duration])), time_signature=(4, 4),
                 meter_changes=((32.0, 3, 4),))
    path = write_piece(tmp_path / "change.mid", both)
    read = read_file(path)[0]
    assert read.time_signature == (4, 4) and read.meter_changes == ((32.0, 3, 4),)
    parts = read.split_at_meter_changes()
    assert [p.time_signature for p in parts] == [(4, 4), (3, 4)]
    assert parts[0].notes() == first.notes() and parts[1].notes() == second.notes()
    manifest = prepare([str(path)], tmp_path / "ds", options=PrepareOptions(valid_fraction=0), progress=False,
                       log=lambda line: None)
    assert [p["time_signature"] for p in manifest["pieces"]] == [[4, 4], [3, 4]]


def small_g(step_noise_dim=2):
    return Generator(cells=6, bar_steps=(16, 12), keys=24, hidden=16, layers=1, latent_dim=4,
                     step_noise_dim=step_noise_dim, chord_hidden=4)


def test_conditioning_changes_what_g_composes_and_how_d_scores():
    torch.manual_seed(0)
    g, z = small_g(), torch.randn(8, 4)
    out = {}
    for name, cond in {"C/4-4": Condition(torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.long)),
                       "D minor": Condition(torch.zeros(8, dtype=torch.long), torch.full((8,), 14)),
                       "3/4": Condition(torch.ones(8, dtype=torch.long), torch.zeros(8, dtype=torch.long))}.items():
        out[name] = g(z, 24, cond=cond, generator=torch.Generator().manual_seed(1)).logits
    assert not torch.allclose(out["C/4-4"], out["D minor"]) and not torch.allclose(out["C/4-4"], out["3/4"])
    # teacher forcing conditions exactly as composing does (without step noise, the two modes agree)
    cond = Condition(torch.ones(8, dtype=torch.long), torch.full((8,), 14))
    quiet = small_g(step_noise_dim=0)
    composed = quiet(z, 24, cond=cond, generator=torch.Generator().manual_seed(1))
    forced = quiet(z, cond=cond, teacher=composed.onehot.argmax(-1))
    assert torch.allclose(forced.logits, composed.logits, atol=1e-5)
    onehot = composed.onehot
    # D: a projection discriminator starts blind to the key, then reads it
    d = Discriminator(features_per_step=12, bar_steps=(16, 12), keys=24, hidden=8)
    x = grid_features(onehot.argmax(-1), 3)
    same = [d(x, Condition(cond.meter, torch.full((8,), k))).logits for k in (0, 14)]
    assert torch.equal(same[0], same[1])
    torch.nn.init.normal_(d.key_embed.weight)
    moved = [d(x, Condition(cond.meter, torch.full((8,), k))).logits for k in (0, 14)]
    assert not torch.allclose(moved[0], moved[1])


def test_the_style_mix_is_drawn_and_a_fixed_meter_gets_its_own_keys():
    counts = np.zeros((2, 24))
    counts[0, parse_key("D major")] = 30
    counts[0, parse_key("G major")] = 10
    counts[1, parse_key("A minor")] = 20
    cond = Conditions([(6, 8), (3, 4)], [60, 60], counts)
    meters, keys = cond.draw(3000, seed=1)
    assert np.allclose(np.bincount(meters, minlength=2) / 3000, [40 / 60, 20 / 60], atol=0.03)
    assert set(keys.tolist()) == {parse_key("D major"), parse_key("G major"), parse_key("A minor")}
    assert (cond.draw(50, seed=2, meter=1)[1] == parse_key("A minor")).all()
    m, k = cond.draw(50, seed=2, key=parse_key("A minor"))
    assert (m == 1).all() and (k == parse_key("A minor")).all()
    m, k = cond.draw(50, seed=2, meter=1, key=parse_key("D major"))  # never paired in the style: still as asked
    assert (m == 1).all() and (k == parse_key("D major")).all()
    assert np.array_equal(cond.draw(20, seed=5)[1], cond.draw(20, seed=5)[1])


def test_compose_takes_a_key_and_meter_and_refuses_bad_names(tiny_run):
    c = Composer.load(tiny_run)
    pieces = c.compose(n=3, bars=2, seed=1, key="D minor", meter="4/4")
    assert [p.meta["key"] for p in pieces] == ["D minor"] * 3 and [p.meta["meter"] for p in pieces] == ["4/4"] * 3
    with pytest.raises(UserError, match="unknown key 'D dorian'; valid keys"):
        c.compose(n=1, key="D dorian")
    with pytest.raises(UserError, match="unknown meter '6/8' for this model; its meters: 4/4"):
        c.compose(n=1, meter="6/8")
    default = c.compose(n=40, bars=1, seed=2)  # drawn from the tiny corpus's own keys
    mix = set(c.conditions.shares()[1])
    assert {p.meta["key"] for p in default} <= mix


def test_generate_takes_key_and_meter_names_and_refuses_bad_ones_in_one_line(tiny_run, tmp_path):
    from test_hostile import run_cli

    r = run_cli("generate", "--model", str(tiny_run), "--n", "2", "--bars", "1", "--seed", "4", "--key", "Bbm",
                "--meter", "4/4", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    for args, reason in ((("--key", "H major"), "unknown key 'H major'; valid keys: C major"),
                         (("--meter", "6/8"), "unknown meter '6/8' for this model; its meters: 4/4")):
        r = run_cli("generate", "--model", str(tiny_run), *args, "--out", str(tmp_path / "bad"))
        assert r.returncode != 0 and r.stderr.startswith("gancomposer: error: ") and reason in r.stderr
        assert len(r.stderr.splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_models_lists_the_shipped_models_with_their_meters_and_keys():
    from test_hostile import run_cli

    r = run_cli("models")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("bach-chorales (default): ") and "  meters: 4/4" in r.stdout


def test_the_key_bias_moves_with_the_tonic():
    """A state's bias depends on its scale degree only: pitch p in key k is biased as p + t in key k + t."""
    from gancomposer.encoding import PianoRoll, Voices

    for enc in (PianoRoll(4, 48, 72), Voices(4, 48, 72, 1)):
        g = Generator(cells=enc.cells, states=enc.states, keys=24, pitch_classes=enc.state_pitch_classes(),
                      hidden=8, layers=1, latent_dim=2, step_noise_dim=0, chord_hidden=0)
        torch.nn.init.normal_(g.key_degree)
        d_minor, e_minor = (g.key_bias(Condition(torch.zeros(1, dtype=torch.long), torch.tensor([parse_key(k)])))[0]
                            for k in ("D minor", "E minor"))
        if isinstance(enc, PianoRoll):  # cells are pitches: two semitones up
            assert torch.equal(d_minor[:-2], e_minor[2:]) and not torch.equal(d_minor, e_minor)
        else:  # states are pitches
            assert torch.equal(d_minor[:, 2:-2], e_minor[:, 4:]) and torch.equal(d_minor[:, :2], e_minor[:, :2])


def test_a_checkpoint_from_before_meters_and_keys_still_composes(tmp_path):
    """What a model shipped before this change holds: one meter in ``data``, no conditions, no key weights."""
    from dataclasses import asdict

    from gancomposer import checkpoint
    from gancomposer.config import ModelConfig
    from gancomposer.encoding import PianoRoll

    cfg = ModelConfig(g_hidden=16, g_layers=1, latent_dim=4, step_noise_dim=2, chord_hidden=8, d_hidden=8)
    enc = PianoRoll(4, 48, 72)
    old = Generator(cells=enc.cells, bar_steps=(16,), hidden=16, layers=1, latent_dim=4, step_noise_dim=2,
                    chord_hidden=8)
    info = {"model": asdict(cfg), "train": {}, "iteration": 10,
            "data": {"encoding": enc.to_dict(), "window_steps": 64, "meter": [4, 4], "tempo": 90.0}}
    checkpoint.save(tmp_path / "old.safetensors", {"G": old}, info)
    c = Composer.load(tmp_path / "old.safetensors")
    assert c.meters == ["4/4"] and c.keys == []
    pieces = c.compose(n=2, bars=2, seed=0)
    assert [len(p.grid) for p in pieces] == [32, 32] and "key" not in pieces[0].meta
    with pytest.raises(UserError, match="trained without keys"):
        c.compose(n=1, key="C major")
