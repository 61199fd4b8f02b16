"""G and D: shapes, D's range, straight-through samples that look exactly like data, continuation."""

import numpy as np
import pytest
import torch

from gancomposer.model import Discriminator, Generator, gumbel_noise, onehot_to_features, straight_through, to_onehot

P = 10


def small_g(**kw):
    return Generator(cells=P, bar_steps=(16,), hidden=24, layers=2, latent_dim=8, step_noise_dim=3, **kw)


def small_d(**kw):
    return Discriminator(features_per_step=2 * P, bar_steps=(16,), hidden=12, **kw)


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_shapes_and_d_output_in_open_unit_interval(rnn):
    torch.manual_seed(0)
    g, d = small_g(rnn=rnn), small_d(rnn=rnn)
    onehot, logits, _ = g(torch.randn(5, 8), 20)
    assert onehot.shape == logits.shape == (5, 20, P, 3)
    x = onehot_to_features(onehot)
    assert x.shape == (5, 20, 2 * P)
    prob = torch.sigmoid(d(x).logits)
    assert prob.shape == (5,) and ((prob > 0) & (prob < 1)).all()


def test_fakes_are_exact_one_hot_so_d_cannot_tell_by_values():
    torch.manual_seed(0)
    real_roll = torch.randint(0, 3, (3, 16, P))
    real = onehot_to_features(to_onehot(real_roll, 3))
    # logits that favour the real states (not overwhelmingly: soft probabilities stay far from 0/1)
    logits = (to_onehot(real_roll, 3) * 30.0 + torch.randn(3, 16, P, 3)).requires_grad_(True)
    fake = onehot_to_features(straight_through(logits, gumbel_noise(logits.shape), tau=1.0))
    assert set(fake.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(fake.detach(), real)  # bit for bit the form of real data
    d = small_d()
    assert torch.equal(d(fake).logits, d(real).logits)  # so D gives both the same score
    d(fake).logits.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0  # while gradients still reach G


def test_generator_samples_are_one_hot_and_gradients_reach_g():
    torch.manual_seed(0)
    g, d = small_g(), small_d()
    onehot, _, _ = g(torch.randn(4, 8), 12)
    assert torch.equal(onehot.detach().sum(-1), torch.ones(4, 12, P))
    assert set(onehot.detach().unique().tolist()) <= {0.0, 1.0}
    d(onehot_to_features(onehot)).logits.mean().backward()
    assert all(p.grad is not None for p in g.parameters())


@pytest.mark.parametrize("chord_hidden", [0, 6])
def test_teacher_forcing_matches_free_running_given_the_same_outputs(chord_hidden):
    torch.manual_seed(0)
    g = Generator(cells=P, bar_steps=(16,), hidden=24, layers=2, latent_dim=8, step_noise_dim=0,
                  chord_hidden=chord_hidden)
    if chord_hidden:  # a live chord layer (it starts switched off), over blocks that do not divide P
        torch.nn.init.normal_(g.chord_v, std=2.0)
    z = torch.randn(2, 8)
    onehot, logits, _ = g(z, 12)
    forced = g(z, teacher=onehot.argmax(-1))
    assert torch.allclose(forced.logits, logits, atol=1e-5)
    assert torch.equal(forced.onehot, onehot)  # the same output type in both modes: the teacher's states


def test_sampling_with_and_without_gradients_draws_the_same_music():
    torch.manual_seed(0)
    g = small_g(chord_hidden=6)
    torch.nn.init.normal_(g.chord_v, std=2.0)
    z = torch.randn(3, 8)
    with_grad, logits, _ = g(z, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        fast, fast_logits, _ = g(z, 16, generator=torch.Generator().manual_seed(5))
    assert torch.equal(with_grad.detach(), fast)
    assert torch.allclose(logits.detach(), fast_logits, atol=1e-5)


def _exactly_one_note_rate(chord_hidden: int) -> float:
    """Fit G by likelihood to steps that sound exactly one of 4 pitches, a minor third apart (in different
    chord blocks), chosen at random; how often do its samples?"""
    torch.manual_seed(0)
    g = Generator(cells=12, bar_steps=(16,), hidden=16, layers=1, latent_dim=4, step_noise_dim=2,
                  chord_hidden=chord_hidden)

    def batch():
        real = torch.zeros(32, 8, 12, dtype=torch.long)
        return real.scatter_(2, 3 * torch.randint(0, 4, (32, 8, 1)), 1)  # one onset per step

    states = _fit_and_sample(g, batch, lr=2e-2)
    return ((states > 0).sum(-1) == 1).float().mean().item()


def _fit_and_sample(g: Generator, batch, lr: float) -> torch.Tensor:
    """Fit ``g`` (latent 4) by likelihood to 150 batches of ``batch()``; the states of 200 pieces of 8 steps it
    then composes."""
    opt = torch.optim.Adam(g.parameters(), lr=lr)
    for _ in range(150):
        real = batch()
        logits = g(torch.randn(32, 4), teacher=real).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, g.states), real.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return g(torch.randn(200, 4), 8, generator=torch.Generator().manual_seed(0)).onehot.argmax(-1)


def test_chord_layer_learns_what_independent_pitches_cannot():
    # With each pitch drawn on its own, "exactly one of four" is at best (3/4)^3 = 42 % likely; the NADE
    # layer lets higher pitches see that a note is already placed below them.
    assert _exactly_one_note_rate(0) < 0.5
    assert _exactly_one_note_rate(6) > 0.9


def test_composing_in_chunks_equals_one_pass():
    torch.manual_seed(0)
    g = small_g()
    torch.nn.init.normal_(g.chord_v, std=2.0)
    z = torch.randn(2, 8)
    whole, _, _ = g(z, 40, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    parts, carry = [], None
    for steps in (16, 16, 8):  # state, last output and bar position carried from chunk to chunk
        part, _, carry = g(z, steps, generator=gen, carry=carry)
        parts.append(part)
    assert torch.equal(torch.cat(parts, 1), whole)
    assert carry[2] == 40


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    d = small_d(spectral_norm=True)
    for _ in range(20):  # power iteration converges during forward passes in training mode
        d(torch.rand(2, 16, 2 * P))
    sigma = torch.linalg.matrix_norm(d.inp.weight, ord=2).item()
    assert sigma == pytest.approx(1.0, abs=0.05)
    plain = small_d()
    assert torch.linalg.matrix_norm(plain.inp.weight, ord=2).item() != pytest.approx(1.0, abs=0.05)


def test_one_d_step_lowers_d_loss_on_a_fixed_batch():
    from gancomposer.losses import get_loss

    d_loss = get_loss("gan").d

    torch.manual_seed(0)
    d = small_d()
    real = onehot_to_features(to_onehot(torch.randint(0, 3, (8, 16, P)), 3))
    fake = onehot_to_features(small_g()(torch.randn(8, 8), 16)[0]).detach()
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    before = d_loss(d(real).logits, d(fake).logits, 0.0)
    opt.zero_grad()
    before.backward()
    opt.step()
    after = d_loss(d(real).logits, d(fake).logits, 0.0)
    assert after.item() < before.item()


def test_g_and_d_work_for_any_number_of_states_per_cell():
    # the networks read only the encoding's shape, so a second encoding (say, 5 states per cell) needs no new code
    torch.manual_seed(0)
    g = Generator(cells=4, states=5, bar_steps=(12,), hidden=16, layers=1, latent_dim=6, step_noise_dim=0,
                  chord_hidden=5)
    torch.nn.init.normal_(g.chord_v, std=2.0)
    g.init_from_data(torch.randint(0, 5, (8, 12, 4)))
    z = torch.randn(3, 6)
    onehot, logits, _ = g(z, 12)
    assert onehot.shape == logits.shape == (3, 12, 4, 5)
    assert torch.equal(onehot.detach().sum(-1), torch.ones(3, 12, 4))
    assert torch.allclose(g(z, teacher=onehot.argmax(-1)).logits, logits, atol=1e-5)
    d = Discriminator(features_per_step=4 * 4, bar_steps=(12,), hidden=8)
    assert d(onehot_to_features(onehot)).logits.shape == (3,)


def test_voice_by_voice_sampling_sees_every_voice_above_and_equals_teacher_forcing():
    # the voices encoding draws one voice at a time (chord_block 1): a voice's logits move with the state of
    # the voice drawn just before it in the same step, never with one drawn after it
    torch.manual_seed(0)
    g = Generator(cells=4, states=7, bar_steps=(12,), hidden=16, layers=1, latent_dim=6, step_noise_dim=0,
                  chord_hidden=5, chord_block=1)
    torch.nn.init.normal_(g.chord_v, std=2.0)
    z = torch.randn(3, 6)
    onehot, logits, _ = g(z, 8)
    assert torch.allclose(g(z, teacher=onehot.argmax(-1)).logits, logits, atol=1e-5)
    states = onehot.argmax(-1)
    changed = states.clone()
    changed[:, :, 1] = (states[:, :, 1] + 1) % 7  # another state for voice 1 only
    a, b = g(z, teacher=states).logits, g(z, teacher=changed).logits
    assert torch.allclose(a[:, 0, :2], b[:, 0, :2]) and not torch.allclose(a[:, 0, 2], b[:, 0, 2])


def _fifth_below_rate(voice_pairs: bool) -> float:
    """Fit G by likelihood to two voices, the upper on a random pitch each step and the lower always a fifth
    below it, with no chord layer; how often do its samples keep the fifth?"""
    torch.manual_seed(0)
    g = Generator(cells=2, states=14, bar_steps=(8,), hidden=16, layers=1, latent_dim=4, step_noise_dim=2,
                  chord_hidden=0, chord_block=1, voice_pairs=voice_pairs)

    def batch():
        upper = torch.randint(7, 12, (32, 8))  # pitches 7..11, a state each: 2 + pitch
        return torch.stack([upper + 2, upper - 7 + 2], -1)

    states = _fit_and_sample(g, batch, lr=5e-2)
    return (states[..., 0] - states[..., 1] == 7).float().mean().item()


def test_voice_pairs_let_a_voice_follow_the_interval_to_the_voice_drawn_before_it():
    # Without a chord layer the lower voice cannot see which pitch the upper one just drew (1 in 5 by chance);
    # the pair table scores "a fifth below it, both moving" directly.
    assert _fifth_below_rate(False) < 0.35
    assert _fifth_below_rate(True) > 0.9


def test_voice_pairs_sampling_equals_teacher_forcing_and_carries_the_sounding_pitches():
    from gancomposer.model import SILENT, VoicePairs

    torch.manual_seed(0)
    g = Generator(cells=4, states=9, bar_steps=(12,), hidden=16, layers=1, latent_dim=6, step_noise_dim=0,
                  chord_hidden=5, chord_block=1, voice_pairs=True)
    torch.nn.init.normal_(g.chord_v, std=2.0)
    torch.nn.init.normal_(g.pairs.table, std=2.0)  # a live table (it starts at zero)
    z = torch.randn(3, 6)
    onehot, logits, carry = g(z, 20)
    forced = g(z, teacher=onehot.argmax(-1))
    assert torch.allclose(forced.logits, logits, atol=1e-5)
    assert torch.equal(forced.carry[3], carry[3])  # each voice's sounding pitch at the end, the same both ways
    with torch.no_grad():
        fast, fast_logits, _ = g(z, 20, generator=torch.Generator().manual_seed(5))
    slow, slow_logits, _ = g(z, 20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(fast, slow.detach()) and torch.allclose(fast_logits, slow_logits.detach(), atol=1e-5)
    # REST 0, TIE 1, onsets from 2: a tie keeps the pitch, a rest ends it, a tie after a rest sounds nothing
    grid = torch.tensor([1, 3, 1, 0, 1, 4, 4, 1, 2]).view(1, -1, 1)
    heard = [SILENT, 1, 1, SILENT, SILENT, 2, 2, 2, 0]
    assert VoicePairs.sounding(grid).flatten().tolist() == heard
    assert VoicePairs.sounding(grid.to(torch.uint8)).flatten().tolist() == heard  # as datasets store pieces
    # and so does G's teacher-forced pass: a uint8 piece and the same piece as int64 give the same logits
    real = onehot.argmax(-1)
    assert torch.equal(g(z, teacher=real.to(torch.uint8)).logits, forced.logits)


def test_voice_pairs_follow_the_setting_for_voices_only_and_old_checkpoints_load_without_them():
    from gancomposer.conditions import Conditions
    from gancomposer.config import ModelConfig, model_config
    from gancomposer.encoding import PianoRoll, Voices

    conditions = Conditions([(4, 4)], [16], np.ones((1, 24), int))
    for enc, pairs in ((Voices(low=60, high=72, voices=4), True), (PianoRoll(low=60, high=72), False)):
        assert (Generator.from_config(ModelConfig(), enc, conditions).pairs is not None) is pairs
    stored = {k: v for k, v in vars(ModelConfig()).items() if k != "voice_pairs"}  # written before the setting
    assert model_config(stored).voice_pairs is False


def _longest_still(g: Generator, states: torch.Tensor) -> int:
    """The most steps in a row of ``states`` ``(B, T, cells)`` with notes sounding and none starting."""
    still, longest = torch.zeros(states.shape[0], dtype=torch.long), 0
    for t in range(states.shape[1]):
        still = g.still_after(states[:, t], still)
        longest = max(longest, int(still.max()))
    return longest


@pytest.mark.parametrize("hold, cells, states, block", [(1, 3, 7, 1), (2, P, 3, 3)])  # voices, roll
def test_g_never_stands_still_longer_than_the_style(hold, cells, states, block):
    def g_that_holds(limit):
        torch.manual_seed(0)
        g = Generator(cells=cells, states=states, bar_steps=(16,), hidden=12, layers=1, latent_dim=4,
                      step_noise_dim=0, chord_hidden=4, chord_block=block, hold_state=hold, still_steps=limit)
        with torch.no_grad():  # a G that, once a note sounds, holds it on and on
            g.local.weight.zero_(), g.local.bias.zero_()
            g.local.weight[hold, hold - 1] = 12.0  # held the step before: hold
            g.local.weight[hold, 1 if hold == 2 else 2] = 12.0  # started the step before: hold
        return g

    z = torch.randn(4, 4)
    assert _longest_still(g_that_holds(0), g_that_holds(0)(z, 48).onehot.argmax(-1)) > 20
    g = g_that_holds(5)
    onehot, _, carry = g(z, 48, generator=torch.Generator().manual_seed(1))
    assert _longest_still(g, onehot.argmax(-1)) == 5
    # the count travels in the carry: two chunks compose what one pass does, and teacher forcing agrees
    gen, parts, chunk = torch.Generator().manual_seed(1), [], None
    for steps in (21, 27):
        part, _, chunk = g(z, steps, generator=gen, carry=chunk)
        parts.append(part)
    assert torch.equal(torch.cat(parts, 1), onehot) and torch.equal(chunk[4], carry[4])
    assert torch.equal(g(z, teacher=onehot.argmax(-1)).carry[4], carry[4])


def test_still_steps_is_fitted_to_the_training_windows_and_old_checkpoints_have_no_limit():
    from gancomposer.config import AUTO, ModelConfig, model_config
    from gancomposer.encoding import PianoRoll, Voices

    # REST 0, TIE 1: steps 1-3 hold (one voice rests at 3, the other still sounds), 4 is silent, 6 holds again
    voices = np.array([[[5, 7], [1, 1], [1, 1], [1, 0], [0, 0], [6, 1], [1, 1]]])
    assert Voices(low=60, high=72, voices=2).longest_still(voices) == 3
    roll = np.array([[[1, 0], [2, 1], [2, 2], [2, 0], [1, 2], [0, 0]]])  # OFF 0, ONSET 1, HOLD 2: steps 2-3 hold
    assert PianoRoll(low=60, high=61).longest_still(roll) == 2
    assert ModelConfig().still_steps == AUTO
    assert ModelConfig().for_data(voices, Voices(low=60, high=72, voices=2)).still_steps == 3
    stored = {k: v for k, v in vars(ModelConfig()).items() if k != "still_steps"}  # written before the setting
    assert model_config(stored).still_steps == 0


def test_voice_pair_table_gradient_is_the_same_every_time_with_several_threads():
    """The table is read at many repeated positions; their gradients must be summed in a fixed order, or two runs
    with one seed drift apart on a multi-core CPU (indexing's backward summed them as threads finished)."""
    from gancomposer.model import SILENT, VoicePairs

    pairs = VoicePairs(voices=4, states=40)
    with torch.no_grad():
        pairs.table.normal_()
    gen = torch.Generator().manual_seed(0)
    heard = torch.randint(-1, 38, (32, 64, 4), generator=gen).clamp(min=SILENT)
    weight = torch.randn(32, 64, 4, 40, generator=gen)
    threads = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        grads = []
        for _ in range(8):
            pairs.zero_grad()
            (pairs.teacher_forced(heard) * weight).sum().backward()
            grads.append(pairs.table.grad.clone())
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(grads[0], g) for g in grads[1:])
