"""The recurrent GAN: a generator G that turns noise into a piano roll and a discriminator D that scores it.

Shapes: ``B`` batch, ``T`` grid steps, ``P`` pitches. A roll is ``(B, T, P)`` of OFF/ONSET/HOLD
(see :mod:`gancomposer.encoding`); both networks see it as ``(B, T, 2P)`` features: an onset plane and a
hold plane (OFF is what is left).

How G's discrete output reaches D with gradients: G emits logits over the three cell states and draws one
state per cell with the straight-through Gumbel-softmax trick. The forward value is an exact one-hot sample,
so D sees fakes in exactly the form of real data (no "not quite 0/1" giveaway); the backward pass uses the
gradient of the relaxed ``softmax((logits + gumbel) / tau)``.

G is autoregressive as in C-RNN-GAN: each step's input is the piece's latent vector, fresh step noise, the
position in the bar, and G's own previous output. Feeding the previous step back is what makes
teacher-forced maximum-likelihood pre-training possible, and carrying the recurrent state on is what lets
G compose pieces longer than its training windows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoding import N_STATES

RNNS = {"lstm": nn.LSTM, "gru": nn.GRU}


def rnn_class(kind: str) -> type[nn.Module]:
    try:
        return RNNS[kind]
    except KeyError:
        raise ValueError(f"unknown rnn {kind!r}; choose one of: {', '.join(RNNS)}") from None


def roll_to_onehot(roll: torch.Tensor) -> torch.Tensor:
    """``(..., P)`` integer states -> ``(..., P, 3)`` float one-hot."""
    return F.one_hot(roll.long(), N_STATES).float()


def onehot_to_features(onehot: torch.Tensor) -> torch.Tensor:
    """``(B, T, P, 3)`` one-hot states -> ``(B, T, 2P)`` onset and hold planes (what the networks see)."""
    b, t, p, _ = onehot.shape
    return onehot[..., 1:].transpose(-1, -2).reshape(b, t, 2 * p)


def bar_position(start: int, steps: int, steps_per_bar: int, device=None) -> torch.Tensor:
    """``(steps, steps_per_bar)`` one-hot of each step's position in its bar."""
    idx = torch.arange(start, start + steps, device=device) % steps_per_bar
    return F.one_hot(idx, steps_per_bar).float()


def straight_through_sample(
    logits: torch.Tensor, tau: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One-hot samples from ``softmax(logits)`` on the last axis, with Gumbel-softmax gradients.

    The forward value is exactly one-hot: ``soft - soft.detach()`` is exactly zero, and adding zero to ``hard``
    changes no bit (``(hard + soft) - soft`` would: ``1 + s - s`` rounds).
    """
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float32)
    gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-7))).to(logits.dtype)
    soft = F.softmax((logits + gumbel) / tau, dim=-1)
    hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard + (soft - soft.detach())


class Generator(nn.Module):
    """Noise -> piano roll. Its only input is random noise (a latent vector per piece and noise per step)."""

    def __init__(
        self, *, n_pitches: int, steps_per_bar: int = 16, rnn: str = "lstm", latent_dim: int = 64,
        step_noise_dim: int = 8, hidden: int = 256, layers: int = 2,
    ):
        super().__init__()
        self.n_pitches, self.steps_per_bar = n_pitches, steps_per_bar
        self.latent_dim, self.step_noise_dim = latent_dim, step_noise_dim
        self.hidden, self.layers, self.kind = hidden, layers, rnn
        n_state = layers * hidden * (2 if rnn == "lstm" else 1)
        self.z_to_state = nn.Linear(latent_dim, n_state)  # the latent sets the initial state...
        self.z_to_input = nn.Linear(latent_dim, hidden)  # ...and colours every step's input
        self.cond_to_input = nn.Linear(steps_per_bar + step_noise_dim, hidden, bias=False)
        self.prev_to_input = nn.Linear(2 * n_pitches, hidden, bias=False)
        self.rnn = rnn_class(rnn)(hidden, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, n_pitches * N_STATES)
        # Each pitch also sees its own previous state directly (shared across pitches): "a sounding note
        # tends to go on" is then one small linear map instead of something the RNN must rediscover.
        self.local = nn.Linear(2, N_STATES)

    @torch.no_grad()
    def init_from_data(self, rolls: torch.Tensor) -> None:
        """Start the per-pitch path at the data's own transition table: log P(state | previous state).

        Adam moves a weight by about the learning rate per step, so log-odds of -5 for "silence stays
        silent" would otherwise take thousands of steps to reach; this makes step 0 as good as a first-order
        model of each pitch, and training spends its time on what the recurrent part adds.
        """
        r = rolls.long()
        prev = torch.cat([torch.zeros_like(r[:, :1]), r[:, :-1]], 1)
        counts = torch.zeros(N_STATES, N_STATES)
        counts.index_put_((prev.reshape(-1), r.reshape(-1)), torch.ones(r.numel()), accumulate=True)
        logp = torch.log((counts + 1) / (counts + 1).sum(1, keepdim=True))  # rows: previous state
        self.local.bias.copy_(logp[0])  # previous OFF: the input is (0, 0)
        self.local.weight[:, 0].copy_(logp[1] - logp[0])  # previous ONSET: input (1, 0)
        self.local.weight[:, 1].copy_(logp[2] - logp[0])  # previous HOLD: input (0, 1)
        self.head.bias.zero_()

    def initial_state(self, z: torch.Tensor):
        """Recurrent state from the latent vector ``z`` of shape ``(B, latent_dim)``."""
        s = torch.tanh(self.z_to_state(z)).view(z.shape[0], -1, self.layers, self.hidden).permute(1, 2, 0, 3)
        return (s[0].contiguous(), s[1].contiguous()) if self.kind == "lstm" else s[0].contiguous()

    def _inputs(self, z: torch.Tensor, start: int, noise: torch.Tensor) -> torch.Tensor:
        """Per-step inputs ``(B, T, hidden)`` from the latent, bar positions from ``start`` and step noise."""
        b, steps, _ = noise.shape
        pos = bar_position(start, steps, self.steps_per_bar, z.device).expand(b, steps, -1)
        return self.z_to_input(z).unsqueeze(1) + self.cond_to_input(torch.cat([pos, noise], -1))

    def forward(
        self, z: torch.Tensor, steps: int = 0, *, tau: float = 1.0, temperature: float = 1.0,
        generator: torch.Generator | None = None, carry: tuple | None = None, teacher: torch.Tensor | None = None,
    ):
        """Compose ``steps`` grid steps from latent ``z`` ``(B, latent_dim)``.

        With ``teacher`` (a real roll) it returns :meth:`teacher_forced_logits` instead: that call has to go
        through ``forward`` so that DistributedDataParallel synchronises its gradients.

        Returns ``(onehot (B, T, P, 3), logits (B, T, P, 3), carry)``. Pass ``carry`` back in to continue a
        piece seamlessly (recurrent state, last output and step count travel in it). ``temperature`` scales
        the logits before sampling (< 1: safer, > 1: wilder); ``tau`` only shapes the gradient.
        """
        if teacher is not None:
            return self.teacher_forced_logits(z, teacher)
        b = z.shape[0]
        if carry is None:
            state, prev, start = self.initial_state(z), z.new_zeros(b, self.n_pitches, 2), 0
        else:
            state, prev, start = carry
        outs, logits_all = [], []
        for t in range(steps):
            # noise is drawn step by step, so a piece composed in chunks equals one composed in one pass
            noise = torch.randn(b, 1, self.step_noise_dim, generator=generator, device=z.device)
            x = self._inputs(z, start + t, noise)[:, 0] + self.prev_to_input(prev.transpose(-1, -2).reshape(b, -1))
            h, state = self.rnn(x.unsqueeze(1), state)
            logits = (self.head(h[:, 0]).view(b, self.n_pitches, N_STATES) + self.local(prev)) / temperature
            y = straight_through_sample(logits, tau, generator)
            prev = y[..., 1:]
            outs.append(y)
            logits_all.append(logits)
        return torch.stack(outs, 1), torch.stack(logits_all, 1), (state, prev, start + steps)

    def teacher_forced_logits(self, z: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, P, 3)`` for each step given the real previous steps (for MLE pre-training).

        ``real`` is a ``(B, T, P)`` roll of states. All steps run in one recurrent call, so it is fast.
        """
        b, steps, _ = real.shape
        onehot = roll_to_onehot(real)[..., 1:]  # (B, T, P, 2)
        prev = torch.cat([onehot.new_zeros(b, 1, self.n_pitches, 2), onehot[:, :-1]], 1)
        noise = torch.randn(b, steps, self.step_noise_dim, device=z.device)
        x = self._inputs(z, 0, noise) + self.prev_to_input(prev.transpose(-1, -2).reshape(b, steps, -1))
        h, _ = self.rnn(x, self.initial_state(z))
        return self.head(h).view(b, steps, self.n_pitches, N_STATES) + self.local(prev)


class Discriminator(nn.Module):
    """Piano roll features ``(B, T, 2P)`` -> one logit per piece; ``D(x) = sigmoid(logit)`` is in (0, 1).

    A per-step projection (with the position in the bar), a bidirectional recurrent layer over time, then
    mean- and max-pooling over time into one score.
    """

    def __init__(
        self, *, n_pitches: int, steps_per_bar: int = 16, rnn: str = "lstm", hidden: int = 128,
        layers: int = 1, spectral_norm: bool = False,
    ):
        super().__init__()
        self.steps_per_bar = steps_per_bar
        norm = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        self.inp = norm(nn.Linear(2 * n_pitches + steps_per_bar, hidden))
        self.rnn = rnn_class(rnn)(hidden, hidden, layers, batch_first=True, bidirectional=True)
        self.out = norm(nn.Linear(4 * hidden, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(B, 4 * hidden)`` (used by feature matching)."""
        b, steps, _ = x.shape
        pos = bar_position(0, steps, self.steps_per_bar, x.device).expand(b, steps, -1)
        h = F.leaky_relu(self.inp(torch.cat([x, pos.to(x.dtype)], -1)), 0.2)
        h, _ = self.rnn(h)
        return torch.cat([h.mean(1), h.amax(1)], -1)

    def forward(self, x: torch.Tensor, with_features: bool = False):
        """Logits ``(B,)``; apply ``torch.sigmoid`` for the probability that ``x`` is real.

        ``with_features=True`` returns ``(logits, features)`` from the same pass (for feature matching).
        """
        feats = self.features(x)
        logits = self.out(feats).squeeze(-1)
        return (logits, feats) if with_features else logits
