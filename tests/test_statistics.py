"""D's reading of a piece's statistics, the statistics-matching term of G's loss, and the default recipe's
settings that scale with the data."""

import json
import math

import pytest
import torch

from gancomposer.config import AUTO, apply, resolve
from gancomposer.errors import UserError
from gancomposer.encoding import HOLD, ONSET, TIE, PianoRoll, Voices
from gancomposer.losses import feature_matching, matching
from gancomposer.model import BarPositions, Discriminator, PieceStatistics, grid_features
from gancomposer.train import train

ROLL = PianoRoll(4, 60, 71)


def chord_and_melody() -> torch.Tensor:
    """Eight 16ths: C4 for four steps, E4 for two, G4 starting at step 4 (a roll of 12 pitches from C4)."""
    g = torch.zeros(1, 8, 12, dtype=torch.long)
    g[0, 0, 0], g[0, 1:4, 0] = ONSET, HOLD
    g[0, 0, 4], g[0, 1, 4] = ONSET, HOLD
    g[0, 4, 7] = ONSET
    return g


def statistics(enc, grid: torch.Tensor) -> torch.Tensor:
    stats = PieceStatistics(enc, 16)
    return stats(grid_features(grid, enc.states), BarPositions((16,))(None, 1, 0, grid.shape[1]))[0]


def test_statistics_of_a_known_piece():
    s = statistics(ROLL, chord_and_melody())
    sounding = torch.tensor([2, 2, 1, 1, 1, 0, 0, 0.0])
    assert s[0] == pytest.approx(sounding.mean().item())  # notes sounding per step
    assert s[1] == pytest.approx(sounding.var(unbiased=False).item())
    assert s[2] == pytest.approx(3 / 8)  # silent steps
    assert s[3] == pytest.approx(3 / 8)  # onsets per step
    pitch_classes = s[5 + 16 : 5 + 16 + 12]
    assert pitch_classes[0] == pytest.approx(4 / 7) and pitch_classes[4] == pytest.approx(2 / 7)
    assert pitch_classes[7] == pytest.approx(1 / 7)


def test_roll_and_voices_give_the_same_statistics():
    voices = Voices(4, 60, 71, 2)
    g = torch.zeros(1, 8, 2, dtype=torch.long)  # the same music as two lines, top first
    g[0, 0, 0], g[0, 1, 0], g[0, 4, 0] = 2 + 4, TIE, 2 + 7
    g[0, 0, 1], g[0, 1:4, 1] = 2 + 0, TIE
    from_voices, from_roll = statistics(voices, g), statistics(ROLL, chord_and_melody())
    assert torch.equal(from_voices[:-1], from_roll) and from_voices[-1] == 0  # voices add the parallels: none


def test_parallel_fifths_and_octaves_are_counted_and_other_motion_is_not():
    voices = Voices(4, 48, 83, 2)

    def two_lines(upper: list[int], lower: list[int]) -> torch.Tensor:
        g = torch.zeros(1, 4 * len(upper), 2, dtype=torch.long)
        for i, (u, w) in enumerate(zip(upper, lower)):
            g[0, 4 * i, 0], g[0, 4 * i + 1 : 4 * i + 4, 0] = 2 + u - 48, TIE
            g[0, 4 * i, 1], g[0, 4 * i + 1 : 4 * i + 4, 1] = 2 + w - 48, TIE
        return statistics(voices, g)[-1]

    # quarter notes, so 4 steps with a new note: G/C -> A/D (parallel fifths) -> B/G -> C/C (hidden octave)
    assert two_lines([67, 69, 71, 72], [60, 62, 55, 48]) == pytest.approx(1 / 5)
    assert two_lines([72, 74, 76, 77], [60, 62, 64, 65]) == pytest.approx(3 / 5)  # parallel octaves throughout
    assert two_lines([67, 69, 71, 72], [60, 59, 55, 53]) == 0  # contrary and oblique motion
    assert two_lines([67, 67, 67, 67], [60, 60, 60, 60]) == 0  # a fifth re-struck does not move


def test_a_unison_on_top_gives_the_melody_of_one_voice():
    voices = Voices(4, 60, 71, 3)
    g = torch.zeros(1, 8, 3, dtype=torch.long)
    g[0, 0, 0], g[0, 1:, 0] = 2 + 7, TIE  # G4 held on top
    g[0, 0, 2], g[0, 4, 2] = 2 + 0, 2 + 2  # C4, then D4 below
    alone = statistics(voices, g)
    g[0, :, 1] = g[0, :, 0]  # the second voice doubles the top one
    doubled = statistics(voices, g)
    assert torch.isfinite(doubled).all()
    melody = slice(-1 - (2 * PieceStatistics.MOTION + 1), -1)  # the top line's steps, before the parallels
    assert torch.equal(doubled[melody], alone[melody]) and alone[melody].max() > 0


def test_statistics_matching_pulls_g_toward_the_real_notes():
    """The gradient of the matching term, through straight-through one-hots, adds notes where the real pieces
    have more of them."""
    stats = PieceStatistics(ROLL, 16)
    pos = BarPositions((16,))(None, 2, 0, 8)
    real = grid_features(chord_and_melody().repeat(2, 1, 1), 3)
    fake = torch.zeros_like(real, requires_grad=True)  # silence
    loss = feature_matching(stats(real, pos), stats(fake, pos))
    loss.backward()
    assert fake.grad[:, 0, 0].sum() < 0  # more onsets of C4 at step 0 lowers the loss


def test_chromaticity_of_a_known_piece_in_roll_and_voices():
    """C4, E4 and G4 start once each: three classes used (softly, 1 - e^-1 each) and an entropy of log 3."""
    used, entropy = PieceStatistics(ROLL, 16).chromaticity(grid_features(chord_and_melody(), 3))[0]
    assert used == pytest.approx(3 * (1 - math.exp(-1))) and entropy == pytest.approx(math.log(3), abs=1e-4)
    voices = Voices(4, 60, 71, 2)
    g = torch.zeros(1, 8, 2, dtype=torch.long)  # the same music as two lines, then C4 struck again
    g[0, 0, 0], g[0, 1, 0], g[0, 4, 0] = 2 + 4, TIE, 2 + 7
    g[0, 0, 1], g[0, 1:4, 1], g[0, 4, 1] = 2 + 0, TIE, 2 + 0
    used, entropy = PieceStatistics(voices, 16).chromaticity(grid_features(g, voices.states))[0]
    assert used == pytest.approx(2 * (1 - math.exp(-1)) + 1 - math.exp(-2))
    assert entropy == pytest.approx(-(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5)), abs=1e-4)


def test_chromaticity_matching_pulls_g_toward_fewer_pitch_classes():
    """Real pieces use three classes; a piece that starts all twelve at once is pulled to drop some of them."""
    stats = PieceStatistics(ROLL, 16)
    real = grid_features(chord_and_melody(), 3)
    cluster = torch.zeros(1, 8, 12, dtype=torch.long)
    cluster[0, 0] = ONSET
    fake = grid_features(cluster, 3).requires_grad_(True)
    feature_matching(stats.chromaticity(real), stats.chromaticity(fake)).backward()
    assert (fake.grad[0, 0, :12] > 0).all()  # fewer onsets lower the loss
    with pytest.raises(UserError, match="d_statistics"):  # computed by D's statistics: none without them
        resolve("tiny", overrides=["chromaticity_matching=1"]).validate()


def test_matching_adds_each_term_at_its_weight():
    torch.manual_seed(0)
    d = Discriminator(features_per_step=ROLL.features_per_step, hidden=8, statistics=ROLL)
    real, fake = grid_features(chord_and_melody(), 3), torch.zeros(1, 8, ROLL.features_per_step)
    cfg = resolve("tiny").train  # every matching weight 0
    assert matching(cfg, d, real, fake, d(fake).features, None) == 0
    cfg.chromaticity_matching, cfg.statistics_matching = 2.0, 0.5
    expected = (0.5 * feature_matching(d.piece_statistics(real), d.piece_statistics(fake))
                + 2.0 * feature_matching(d.statistics.chromaticity(real), d.statistics.chromaticity(fake)))
    assert torch.allclose(matching(cfg, d, real, fake, d(fake).features, None), expected) and expected > 0


def test_d_reads_the_statistics_and_old_ds_do_not():
    torch.manual_seed(0)
    x = grid_features(chord_and_melody(), 3)
    with_stats = Discriminator(features_per_step=ROLL.features_per_step, hidden=8, statistics=ROLL)
    without = Discriminator(features_per_step=ROLL.features_per_step, hidden=8)
    assert with_stats(x).features.shape[-1] == 5 * 8 and without(x).features.shape[-1] == 4 * 8
    assert not any("stats" in k for k in without.state_dict())


def test_auto_settings_scale_with_the_data():
    cfg = resolve(None).train
    assert cfg.pretrain_iters == AUTO and cfg.eval_every == AUTO
    big, small, tiny = cfg.for_data(200_000), cfg.for_data(1000), cfg.for_data(10)
    assert big.pretrain_iters == 12_000 and small.pretrain_iters == 20 * 32  # 20 passes over 32 batches
    assert cfg.for_data(15_351).pretrain_iters == 20 * 480  # 480 batches: under the cap
    assert tiny.pretrain_iters == 100  # never fewer
    assert big.eval_every == big.checkpoint_every == 1300  # about 10 in 12000 + 400 + 400 iterations
    assert resolve(None, overrides=["pretrain_iters=auto", "eval_every=7"]).train.for_data(100).eval_every == 7


def test_config_json_holds_the_resolved_values(tiny_data, tmp_path):
    cfg = apply(resolve("tiny"), {"pretrain_iters": AUTO, "eval_every": AUTO, "checkpoint_every": AUTO,
                                  "adversarial_iters": 2}, "test")
    train(tiny_data, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert stored["pretrain_iters"] > 0 and stored["eval_every"] >= 50 and stored["checkpoint_every"] >= 50
