"""Composing: determinism by seed, long pieces, interpolation, files out, audio and the README's API example."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import symusic

from gancomposer.audio import render_wav, synthesize, wav_info
from gancomposer.compose import DEFAULT_MODEL, Composer, concatenate
from gancomposer.conditions import KEYS
from gancomposer.errors import UserError
from gancomposer.sampling import sample_grids
from helpers import scale_piece
from test_hostile import run_cli


def test_same_seed_same_music_other_seed_other_music(tiny_run):
    c = Composer.load(tiny_run)
    a = c.compose(n=3, bars=4, seed=7)
    b = c.compose(n=3, bars=4, seed=7)
    other = c.compose(n=3, bars=4, seed=8)
    assert all(np.array_equal(x.grid, y.grid) for x, y in zip(a, b))
    assert not all(np.array_equal(x.grid, y.grid) for x, y in zip(a, other))
    assert [p.grid.shape[0] for p in a] == [4 * 16] * 3


def test_long_pieces_are_one_continuous_pass(tiny_run):
    c = Composer.load(tiny_run)
    z = c.latents(2, seed=3)
    chunked = sample_grids(c.generator, z, 12 * 16, seed=3, chunk_steps=4 * 16)  # state carried over 2 boundaries
    one_pass = sample_grids(c.generator, z, 12 * 16, seed=3, chunk_steps=12 * 16)
    assert np.array_equal(chunked, one_pass) and chunked.shape == (2, 12 * 16, c.encoding.cells)
    meters, keys = c.choose(2, seed=3)
    keyed = sample_grids(c.generator, z, 12 * 16, seed=3, cond=c._condition(meters, keys))
    assert all(np.array_equal(x, y) for x, y in zip(c.compose_latents(z, 12, seed=3, meters=meters, keys=keys),
                                                     keyed))


def test_interpolation_ends_at_the_seeds_latents(tiny_run):
    c = Composer.load(tiny_run)
    walk = c.interpolate(1, 2, pieces=4, bars=2)
    assert [p.meta["t"] for p in walk] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    meters, keys = c.choose(1, seed=1)  # the walk is in the meter and key of its first piece
    assert {p.meta["key"] for p in walk} == {KEYS[keys[0]]}
    ends = [c.compose_latents(c.latents(1, s), 2, seed=1, meters=meters, keys=keys)[0] for s in (1, 2)]
    assert np.array_equal(walk[0].grid, ends[0]) and np.array_equal(walk[-1].grid, ends[1])
    joined = concatenate(walk, gap_bars=1)
    assert joined.end <= 4 * (2 + 1) * 4 and len(joined) == sum(len(p.piece) for p in walk)


def test_bad_requests_are_refused(tiny_run):
    c = Composer.load(tiny_run)
    for kwargs in (dict(bars=0), dict(n=0), dict(seed=-1), dict(temperature=0), dict(temperature=float("nan")),
                   dict(temperature=float("inf")), dict(temperature=1e-30), dict(bars=100_000)):
        with pytest.raises(UserError):
            c.compose(**kwargs)
    with pytest.raises(UserError, match="no checkpoint"):
        Composer.load(tiny_run / "samples")


def test_many_pieces_come_in_batches_the_same_every_time(tiny_run, monkeypatch):
    import gancomposer.compose as compose

    monkeypatch.setattr(compose, "BATCH", 8)
    c = Composer.load(tiny_run)
    batches = list(c.compose_batches(20, bars=1, seed=3))
    assert [len(b) for b in batches] == [8, 8, 4]
    again = c.compose(n=20, bars=1, seed=3)
    assert all(np.array_equal(a.grid, b.grid) for a, b in zip([p for b in batches for p in b], again))
    assert [p.piece.name for p in again] == [f"seed3-{i}" for i in range(20)]
    # the first batch is what a request of that size alone gives; later batches draw new noise
    assert all(np.array_equal(a.grid, b.grid) for a, b in zip(again[:8], c.compose(n=8, bars=1, seed=3)))
    assert not np.array_equal(again[8].grid, again[0].grid)


def test_exported_temperature_is_the_default_and_an_argument_overrides_it(tiny_run, tmp_path):
    from gancomposer.cli import main

    assert main(["export", "--model", str(tiny_run), "--out", str(tmp_path / "m.safetensors"),
                 "--temperature", "0.7"]) == 0
    c = Composer.load(tmp_path / "m.safetensors")
    assert c.temperature == 0.7 and Composer.load(tiny_run).temperature == 1.0
    default = c.compose(n=2, bars=2, seed=4)
    explicit = c.compose(n=2, bars=2, seed=4, temperature=0.7)
    hot = c.compose(n=2, bars=2, seed=4, temperature=1.5)
    assert all(np.array_equal(x.grid, y.grid) for x, y in zip(default, explicit))
    assert not all(np.array_equal(x.grid, y.grid) for x, y in zip(default, hot))


def test_exported_key_guidance_weighs_the_key_bias_while_composing_only(tiny_run, tmp_path):
    import torch

    from gancomposer.cli import main
    from gancomposer.model import Condition

    assert main(["export", "--model", str(tiny_run), "--out", str(tmp_path / "k.safetensors"),
                 "--key-guidance", "2"]) == 0
    guided, plain = Composer.load(tmp_path / "k.safetensors"), Composer.load(tiny_run)
    assert guided.generator.key_guidance == 2.0 and plain.generator.key_guidance == 1.0
    assert guided.generator.keys, "the tiny run's model has keys"
    g = plain.generator
    torch.nn.init.normal_(g.key_degree)  # a strong key bias, so that its weight shows
    z, cond = torch.randn(4, g.latent_dim), Condition(torch.zeros(4, dtype=torch.long), torch.full((4,), 14))
    first = {}
    for w in (0.0, 1.0, 2.0):  # the first cell's first logits are the only ones no earlier draw moves
        g.key_guidance = w
        with torch.no_grad():
            first[w] = g(z, 1, cond=cond, generator=torch.Generator().manual_seed(0)).logits[:, 0, 0]
    assert torch.allclose(first[2.0] - first[1.0], first[1.0] - first[0.0], atol=1e-5)
    assert not torch.allclose(first[1.0], first[0.0])
    # likelihood training reads G as trained, whatever the composing weight
    real = torch.randint(0, g.states, (4, 8, g.cells))
    torch.manual_seed(1)  # teacher forcing draws its step noise from the global generator
    forced = g(z, cond=cond, teacher=real).logits
    g.key_guidance = 1.0
    torch.manual_seed(1)
    assert torch.equal(forced, g(z, cond=cond, teacher=real).logits)
    r = run_cli("export", "--model", str(tiny_run), "--out", str(tmp_path / "bad.safetensors"), "--key-guidance", "9")
    assert r.returncode != 0 and r.stderr.strip() == "gancomposer: error: key guidance must lie in 0..4, got 9.0"
    assert not (tmp_path / "bad.safetensors").exists()


def test_numpy_synth_wav_length_matches_the_music(tmp_path):
    p = scale_piece(bars=2)  # 8 quarters at 96 qpm = 5 s, plus a 1 s tail
    path = tmp_path / "a.wav"
    assert render_wav(p, path, program=19, engine="numpy") == "numpy"
    seconds, peak = wav_info(path)
    assert seconds == pytest.approx(8 * 60 / 96 + 1.0, abs=0.01)
    assert peak > 0.1
    assert np.abs(synthesize(p, program=0)).max() > 0.1  # the piano voice sounds too


@pytest.mark.skipif(not __import__("gancomposer.audio", fromlist=["x"]).fluidsynth_available(),
                    reason="fluidsynth or a GM soundfont is not installed "
                           "(apt-get install fluidsynth fluid-soundfont-gm)")
def test_fluidsynth_wav_length_matches_the_music(tmp_path):
    p = scale_piece(bars=2)
    path = tmp_path / "f.wav"
    assert render_wav(p, path, engine="fluidsynth") == "fluidsynth"
    seconds, peak = wav_info(path)
    assert seconds == pytest.approx(8 * 60 / 96 + 1.0, abs=0.01) and peak > 0.01


def test_generate_cli_writes_predictable_names_and_never_overwrites(tiny_run, tmp_path):
    cmd = [sys.executable, "-m", "gancomposer", "generate", "--model", str(tiny_run), "--n", "2", "--bars", "4",
           "--seed", "5", "--out", str(tmp_path), "--format", "mid,wav,png"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["seed5-0.mid", "seed5-0.png", "seed5-0.wav", "seed5-1.mid", "seed5-1.png", "seed5-1.wav"]
    assert symusic.Score(str(tmp_path / "seed5-0.mid")).note_num() > 0
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "--force" in again.stderr and "Traceback" not in again.stderr
    assert subprocess.run(cmd + ["--force"], capture_output=True, timeout=120).returncode == 0


@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="the pretrained model is not in this checkout")
def test_readme_api_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the example from README.md, as written there
    from gancomposer import Composer

    composer = Composer.load()  # the pretrained Bach-chorale model shipped in the package
    pieces = composer.compose(n=4, bars=8, seed=0)
    pieces[0].save_midi("chorale.mid")
    pieces[0].save_wav("chorale.wav")
    pieces[0].save_png("chorale.png")

    assert len(pieces) == 4 and all(len(p.piece) > 0 for p in pieces)
    assert symusic.Score("chorale.mid").note_num() == len(pieces[0].piece)
    seconds, peak = wav_info("chorale.wav")
    assert seconds >= 8 * 4 * 60 / composer.tempo and peak > 0.01
    assert (tmp_path / "chorale.png").stat().st_size > 1000


@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="the pretrained model is not in this checkout")
def test_demo_writes_eight_midi_wav_and_png(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gancomposer", "demo", "--out", str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    mids, wavs, pngs = (sorted(tmp_path.glob(f"*.{k}")) for k in ("mid", "wav", "png"))
    assert len(mids) == len(wavs) == len(pngs) == 8
    for mid, wav in zip(mids, wavs):
        score = symusic.Score(str(mid))
        assert score.note_num() > 0
        music_s = score.to("second").end()
        seconds, peak = wav_info(wav)
        assert peak > 0.01  # not silent
        assert seconds == pytest.approx(music_s + 1.0, abs=0.05)  # the music plus a one-second release


def test_a_checkpoint_written_by_0_1_0_still_composes_the_same_music():
    # written by gancomposer 0.1.0 (flat config, old key names, checkpoint version 1) with the music it composed
    data = Path(__file__).parent / "data"
    c = Composer.load(data / "checkpoint-0.1.0.safetensors")
    grids = np.stack([p.grid for p in c.compose(n=3, bars=5, seed=1)])
    assert np.array_equal(grids, np.load(data / "checkpoint-0.1.0-compose-n3-bars5-seed1.npy"))
    assert c.info["model"]["g_hidden"] == 32 and c.info["train"]["adversarial_iters"] == 20
    assert c.info["progress"] == {"pretrain_iters": 12, "d_pretrain_iters": 6, "adversarial_iters": 20}
