"""Losses equal hand-computed values; penalties and feature matching do what they claim."""

import math

import pytest
import torch

from gancomposer.config import TrainConfig
from gancomposer.errors import UserError
from gancomposer.losses import (LOSSES, expected_onsets, feature_matching, get_loss, gradient_penalty, interpolate,
                                mean_entropy, r1_penalty)


def d_loss(kind, r, f, label_smoothing=0.0):
    return get_loss(kind).d(r, f, label_smoothing)


def g_loss(kind, f):
    return get_loss(kind).g(f)

R = torch.tensor([2.0, -1.0])  # D's logits on two real pieces
F_ = torch.tensor([0.5, -3.0])  # and on two fakes


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_classic_d_loss_is_mean_minus_log_d_real_plus_minus_log_one_minus_d_fake():
    expected = (-math.log(sig(2.0)) - math.log(sig(-1.0))) / 2 + (-math.log(1 - sig(0.5)) - math.log(1 - sig(-3.0))) / 2
    assert d_loss("gan", R, F_).item() == pytest.approx(expected, rel=1e-6)


def test_classic_g_loss_is_non_saturating_minus_log_d_fake():
    expected = (-math.log(sig(0.5)) - math.log(sig(-3.0))) / 2
    assert g_loss("gan", F_).item() == pytest.approx(expected, rel=1e-6)


def test_one_sided_label_smoothing_targets_point_nine_for_real_only():
    s = 0.1
    real_term = sum(-(1 - s) * math.log(sig(r)) - s * math.log(1 - sig(r)) for r in (2.0, -1.0)) / 2
    fake_term = (-math.log(1 - sig(0.5)) - math.log(1 - sig(-3.0))) / 2
    assert d_loss("gan", R, F_, label_smoothing=s).item() == pytest.approx(real_term + fake_term, rel=1e-6)


def test_stable_for_extreme_logits():
    big = torch.tensor([200.0, -200.0])
    assert torch.isfinite(d_loss("gan", big, -big)) and torch.isfinite(g_loss("gan", big))


def test_other_losses_by_hand():
    assert d_loss("wgan-gp", R, F_).item() == pytest.approx((0.5 - 3.0) / 2 - (2.0 - 1.0) / 2)
    assert g_loss("wgan-gp", F_).item() == pytest.approx(1.25)
    assert d_loss("hinge", R, F_).item() == pytest.approx((0 + 2.0) / 2 + (1.5 + 0) / 2)
    assert g_loss("hinge", F_).item() == pytest.approx(1.25)
    assert d_loss("lsgan", R, F_).item() == pytest.approx(0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2)
    assert g_loss("lsgan", F_).item() == pytest.approx(0.5 * (0.25 + 16) / 2)


def test_unknown_loss_lists_the_choices():
    with pytest.raises(UserError, match="choose one of: " + ", ".join(LOSSES)):
        get_loss("wasserstein")


def test_the_registry_offers_exactly_the_losses_the_config_accepts():
    field = TrainConfig.__dataclass_fields__["loss"]
    assert set(field.metadata["choices"]) == set(LOSSES)


class Linear(torch.nn.Module):
    """D(x) = w . x : its input gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return (x.flatten(1) * self.w).sum(1)


def test_r1_is_the_squared_input_gradient_norm():
    d = Linear([3.0, 4.0])
    real = torch.randn(5, 2).requires_grad_(True)
    pen = r1_penalty(d(real), real)
    assert pen.item() == pytest.approx(25.0)
    pen.backward()  # double backward reaches D's weights: d/dw ||w||^2 = 2w
    assert d.w.grad.tolist() == pytest.approx([6.0, 8.0])


def test_gradient_penalty_is_zero_for_unit_gradient_and_grows_otherwise():
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    x_hat = interpolate(real, fake)
    assert gradient_penalty(Linear([0.6, 0.8])(x_hat), x_hat).item() == pytest.approx(0.0, abs=1e-6)
    x_hat = interpolate(real, fake)
    assert gradient_penalty(Linear([3.0, 4.0])(x_hat), x_hat).item() == pytest.approx(16.0)


def test_feature_matching_zero_for_equal_means_and_gradient_reaches_fakes():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    fake = torch.tensor([[2.0, 3.0], [2.0, 3.0]], requires_grad=True)
    assert feature_matching(real, fake).item() == 0.0
    fake2 = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)
    loss = feature_matching(real, fake2)
    assert loss.item() == pytest.approx(1 + 4)
    loss.backward()
    assert fake2.grad is not None and fake2.grad.abs().sum() > 0


def test_score_function_gradient_has_the_sign_of_the_true_gradient():
    """One categorical cell: E[r] = sum_k p_k r_k has the exact gradient p_k (r_k - E[r]); REINFORCE's estimate
    from many samples (minus the gradient of its loss) points the same way, component by component."""
    from gancomposer.losses import score_function_loss

    theta = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
    r = torch.tensor([0.0, 1.0, 3.0])
    p = torch.softmax(theta, -1)
    exact = (p * (r - (p * r).sum())).detach()
    gen = torch.Generator().manual_seed(0)
    draws = torch.multinomial(p.detach(), 20_000, replacement=True, generator=gen)
    onehot = torch.nn.functional.one_hot(draws, 3).float().view(-1, 1, 1, 3)
    logits = theta.expand(len(draws), 3).view(-1, 1, 1, 3)
    loss = score_function_loss(logits, onehot, r[draws], baseline=float((p * r).sum()))
    (grad,) = torch.autograd.grad(loss, theta)
    assert torch.equal(torch.sign(-grad), torch.sign(exact))
    assert torch.allclose(-grad, exact, atol=0.03)


@pytest.mark.parametrize("estimator", ["gumbel", "reinforce"])
def test_both_estimators_train_g_toward_a_known_optimum(estimator):
    """Reward: the share of sounding cells (optimum: every cell sounds). A few dozen updates of a small G by
    either estimator raise it well above where it started."""
    from gancomposer.losses import BASELINE_DECAY, score_function_loss
    from gancomposer.model import Generator

    torch.manual_seed(0)
    g = Generator(cells=6, states=3, bar_steps=(4,), latent_dim=4, step_noise_dim=2, hidden=16, layers=1,
                  chord_hidden=8)
    opt = torch.optim.Adam(g.parameters(), lr=0.02)

    def sounding(n=256) -> float:
        with torch.no_grad():
            out = g(torch.randn(n, 4, generator=torch.Generator().manual_seed(1)), 8,
                    generator=torch.Generator().manual_seed(2))
        return float(1 - out.onehot[..., 0].mean())

    before, baseline = sounding(), None
    for _ in range(40):
        out = g(torch.randn(64, 4), 8)
        reward = 1 - out.onehot[..., 0].mean((1, 2))  # per piece
        if estimator == "gumbel":
            loss = -reward.mean()  # straight through the one-hot samples
        else:
            base = float(reward.mean()) if baseline is None else baseline
            loss = score_function_loss(out.logits, out.onehot, reward, base)
            baseline = BASELINE_DECAY * base + (1 - BASELINE_DECAY) * float(reward.mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert sounding() > before + 0.2, (before, sounding())


def test_expected_onsets_count_every_state_but_silence_and_hold():
    from gancomposer.model import NEVER

    # the roll's OFF / ONSET / HOLD: 0.3 of a note per cell, four cells a step
    roll = torch.tensor([0.5, 0.3, 0.2]).log().expand(2, 5, 4, 3)
    assert expected_onsets(roll, hold_state=2).item() == pytest.approx(4 * 0.3)
    # the voices' REST / TIE / one onset per pitch, a pitch out of range ruled out: 0.4 of a note per voice
    voices = torch.tensor([0.1, 0.5, 0.2, 0.2]).log()
    voices = torch.cat([voices, torch.tensor([NEVER])]).expand(3, 6, 4, 5)
    assert expected_onsets(voices, hold_state=1).item() == pytest.approx(4 * 0.4, rel=1e-5)
    # hotter (the logits scaled down), a sparse distribution starts more notes
    assert expected_onsets(roll / 1.3, hold_state=2) > expected_onsets(roll, hold_state=2)


def test_mean_entropy_of_known_distributions_and_its_anchor_pulls_toward_the_target():
    from gancomposer.model import NEVER

    assert mean_entropy(torch.zeros(3, 5, 4)).item() == pytest.approx(math.log(4))  # uniform over 4 states
    masked = torch.tensor([[0.0, 0.0, NEVER, NEVER]])  # two states ruled out: uniform over the other two
    assert mean_entropy(masked).item() == pytest.approx(math.log(2))
    assert mean_entropy(torch.tensor([[50.0, 0.0, 0.0]])).item() < 1e-18
    # the entropy anchor's gradient moves G's spread toward the pre-trained one's, from either side
    for start, target in ((torch.tensor([[4.0, 0.0, 0.0]]), 0.9), (torch.tensor([[0.5, 0.0, 0.0]]), 0.3)):
        logits = start.clone().requires_grad_(True)
        before = mean_entropy(logits).item()
        (10.0 * (mean_entropy(logits) - target) ** 2).backward()
        with torch.no_grad():
            after = mean_entropy(logits - 0.1 * logits.grad).item()
        assert abs(after - target) < abs(before - target)


def test_smoothed_matching_pulls_along_the_moving_average_of_the_difference():
    from gancomposer.losses import smoothed_target

    errors, real = {}, torch.zeros(2)
    fake = torch.tensor([1.0, 2.0], requires_grad=True)
    ((fake - smoothed_target(fake.detach(), real, errors, "s", 0.9)) ** 2).sum().backward()
    assert torch.allclose(fake.grad, 2 * fake.detach())  # the first batch: its own difference, as unsmoothed
    noisy = torch.tensor([-1.0, 0.0], requires_grad=True)  # a batch whose own difference points the other way
    target = smoothed_target(noisy.detach(), real, errors, "s", 0.9)
    ((noisy - target) ** 2).sum().backward()
    assert torch.allclose(noisy.grad, 2 * torch.tensor([0.9 * 1 + 0.1 * -1, 0.9 * 2 + 0.1 * 0]))  # the average's way
    assert errors["s"] == pytest.approx([0.8, 1.8]) and set(errors) == {"s"}
