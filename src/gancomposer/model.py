"""The recurrent GAN: a generator G that turns noise into an encoded piece and a discriminator D that scores it.

Both networks work on any :class:`~gancomposer.encoding.Encoding`. Shapes: ``B`` batch, ``T`` grid steps,
``P`` cells per step (a pitch each in the piano roll), ``S`` states per cell (OFF/ONSET/HOLD in the roll).
A piece is ``(B, T, P)`` of states; both networks see it as ``(B, T, (S - 1) P)`` features: one plane per
state other than state 0 (for the roll, an onset plane and a hold plane; OFF is what is left).

How G's discrete output reaches D with gradients: G emits logits over the cell states and draws one
state per cell with the straight-through Gumbel-softmax trick. The forward value is an exact one-hot sample,
so D sees fakes in exactly the form of real data (no "not quite 0/1" giveaway); the backward pass uses the
gradient of the relaxed ``softmax((logits + gumbel) / tau)``.

G is autoregressive as in C-RNN-GAN: each step's input is the piece's latent vector, fresh step noise, the
position in the bar, the key, and G's own previous output. Feeding the previous step back is what makes
teacher-forced maximum-likelihood pre-training possible, and carrying the recurrent state on is what lets
G compose pieces longer than its training windows.

Both networks are conditioned on the piece's meter and key (a :class:`Condition` per piece). The meter enters
as the position in the bar, one-hot over a table of every (meter, position) pair, so each meter has its own
learned embedding of each of its positions (beat 2 of 6/8 is not beat 2 of 3/4, though both bars hold 12
sixteenths). The key is one of 24; G adds a learned embedding of it to its initial state and to every step's
input, and a learned bias by scale degree to every state's logit: the bias of a pitch depends on the mode and
on the pitch class counted from the tonic, so what "the leading tone is likely, the flat second is not" means
is learned once from every piece, whatever its key, instead of once per key. D is a projection discriminator
(Miyato & Koyama 2018): the key's embedding dotted with D's features is added to its logit.

Within one step G is autoregressive too, over blocks of cells from low to high (after the RNN-NADE of
Boulanger-Lewandowski et al., 2012): each pitch's logits see the states already drawn for the pitches
below its block through a small NADE layer. Drawing all pitches of a chord independently gives four-part music
random extra or missing voices and stray high notes that wreck the melody; the NADE term lets G know
which voices it has already placed. With the voices encoding a second within-step term (:class:`VoicePairs`)
scores how each voice moves against each voice drawn before it: the NADE layer sees 48 unrelated pitch states,
so "the fifth between these two voices stays a fifth as both move up" would be a rule to learn once per pair of
pitches; by interval class and direction it is one number.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .conditions import Conditions
from .config import ModelConfig
from .encoding import TIE, Encoding

RNNS = {"lstm": nn.LSTM, "gru": nn.GRU}


def rnn_class(kind: str) -> type[nn.Module]:
    try:
        return RNNS[kind]
    except KeyError:
        raise ValueError(f"unknown rnn {kind!r}; choose one of: {', '.join(RNNS)}") from None


def copy_network(net: nn.Module) -> nn.Module:
    """A deep copy of ``net`` whose recurrent layers keep their weights in one block, as cuDNN wants them
    (a plain deep copy leaves them apart, and cuDNN then copies them together at every call, with a warning)."""
    twin = copy.deepcopy(net)
    for m in twin.modules():
        if isinstance(m, nn.RNNBase):
            m.flatten_parameters()
    return twin


def run_recurrent(rnn: nn.Module, x: torch.Tensor, state=None):
    """``rnn(x, state)`` in float32, also under autocast: autocast runs cuDNN's recurrent layers in float16
    whatever dtype it was asked for (seen on an H200 under bfloat16 autocast), and float16 gradients without a
    loss scaler underflow. Recurrent layers of these sizes are bound by kernel launches, not arithmetic, so
    float32 costs little; the layers around them still run in bfloat16."""
    with torch.autocast(x.device.type, enabled=False):
        if state is not None:
            state = tuple(s.float() for s in state) if isinstance(state, tuple) else state.float()
        return rnn(x.float(), state)


def to_onehot(grid: torch.Tensor, states: int) -> torch.Tensor:
    """``(..., P)`` integer states -> ``(..., P, S)`` float one-hot."""
    return F.one_hot(grid.long(), states).float()


def onehot_to_features(onehot: torch.Tensor) -> torch.Tensor:
    """``(B, T, P, S)`` one-hot states -> ``(B, T, (S - 1) P)``: a plane per state but state 0 (what the
    networks see; for the roll, the onset plane then the hold plane)."""
    b, t, p, s = onehot.shape
    return onehot[..., 1:].transpose(-1, -2).reshape(b, t, (s - 1) * p)


def grid_features(grid: torch.Tensor, states: int) -> torch.Tensor:
    """``(B, T, P)`` integer states -> ``(B, T, (S - 1) P)``: how the networks see real pieces."""
    return onehot_to_features(to_onehot(grid, states))


class GeneratorOutput(NamedTuple):
    """What G returns in both of its modes."""

    onehot: torch.Tensor  # (B, T, P, S): the drawn states (teacher forcing: the teacher's)
    logits: torch.Tensor  # (B, T, P, S): what each step's states were drawn from
    carry: tuple  # recurrent state, last output, steps done, ...: pass it back in to continue the piece


class DiscriminatorOutput(NamedTuple):
    logits: torch.Tensor  # (B,): D(x) = sigmoid(logits)
    features: torch.Tensor  # (B, F): the penultimate features (feature matching reads them)


class Condition(NamedTuple):
    """What each piece of a batch is composed under: ``meter`` ``(B,)`` indexes the model's meters, ``key``
    ``(B,)`` the 24 keys of :data:`~gancomposer.conditions.KEYS` (None for a model without keys)."""

    meter: torch.Tensor
    key: torch.Tensor | None = None

    def to(self, device) -> Condition:
        return Condition(self.meter.to(device), None if self.key is None else self.key.to(device))

    def repeat(self, times: int) -> Condition:
        """The conditions of a batch made of ``times`` batches under these, one after another."""
        return Condition(self.meter.repeat(times), None if self.key is None else self.key.repeat(times))

    @staticmethod
    def of(meters: np.ndarray, keys: np.ndarray, keyed: bool) -> Condition:
        """The conditions of pieces with these meter and key indices (keys left out for a model without)."""
        return Condition(torch.from_numpy(np.asarray(meters, np.int64)),
                         torch.from_numpy(np.asarray(keys, np.int64)) if keyed else None)

    @staticmethod
    def cat(conds: list[Condition]) -> Condition:
        """The conditions of batches put one after another."""
        keys = [c.key for c in conds]
        return Condition(torch.cat([c.meter for c in conds]), None if keys[0] is None else torch.cat(keys))


def _key(keys: int, cond: Condition | None) -> torch.Tensor | None:
    """The key indices a network with ``keys`` keys reads from ``cond``: None when either has none."""
    return cond.key if keys and cond is not None else None


class BarPositions(nn.Module):
    """Each step's position in its bar, one-hot over all (meter, position) pairs of the model's meters."""

    def __init__(self, bar_steps: tuple[int, ...]):
        super().__init__()
        self.bar_steps = tuple(int(s) for s in bar_steps)
        self.width = sum(self.bar_steps)
        steps = torch.tensor(self.bar_steps)
        self.register_buffer("steps", steps, persistent=False)
        self.register_buffer("offsets", torch.cumsum(steps, 0) - steps, persistent=False)

    def forward(self, meter: torch.Tensor | None, batch: int, start: int, steps: int) -> torch.Tensor:
        """``(batch, steps, width)`` for steps ``start ..`` of pieces in the meters ``meter`` ``(batch,)`` (None:
        the first meter)."""
        if meter is None:
            meter = torch.zeros(batch, dtype=torch.long, device=self.steps.device)
        t = torch.arange(start, start + steps, device=self.steps.device)
        idx = self.offsets[meter].unsqueeze(1) + t.unsqueeze(0) % self.steps[meter].unsqueeze(1)
        return F.one_hot(idx, self.width).float()


class BlockNoise:
    """Random numbers for a batch made of blocks of rows, each block drawn from its own generator: a block gets
    exactly the numbers it would get as a batch of its own (so requests composed together sound as if alone)."""

    def __init__(self, generators: list[torch.Generator], sizes: list[int]):
        self.generators, self.sizes = generators, sizes

    def draw(self, fn, shape: tuple[int, ...], device) -> torch.Tensor:
        return torch.cat([fn((n, *shape[1:]), generator=g, device=device, dtype=torch.float32)
                          for g, n in zip(self.generators, self.sizes)])


Noise = torch.Generator | BlockNoise | None


def _draw(fn, shape: tuple[int, ...], generator: Noise, device) -> torch.Tensor:
    if isinstance(generator, BlockNoise):
        return generator.draw(fn, shape, device)
    return fn(shape, generator=generator, device=device, dtype=torch.float32)


def gumbel_noise(shape: torch.Size, generator: Noise = None, device=None) -> torch.Tensor:
    """Standard Gumbel noise: ``argmax(logits + noise)`` is a sample from ``softmax(logits)``."""
    u = _draw(torch.rand, tuple(shape), generator, device)
    return -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-7)))


def inverse_temperature(temperature: float | torch.Tensor, rows: int, device) -> torch.Tensor:
    """``1 / temperature`` as a ``(rows, 1)`` column: one temperature for all rows, or one per row."""
    t = torch.as_tensor(temperature, dtype=torch.float32, device=device).reshape(-1, 1)
    return (1.0 / t).expand(rows, 1)


def straight_through(logits: torch.Tensor, gumbel: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """The one-hot sample ``argmax(logits + gumbel)`` with Gumbel-softmax gradients (none without grad).

    The forward value is exactly one-hot: ``soft - soft.detach()`` is exactly zero, and adding zero to ``hard``
    changes no bit (``(hard + soft) - soft`` would: ``1 + s - s`` rounds).
    """
    noisy = logits + gumbel.to(logits.dtype)
    hard = F.one_hot(noisy.argmax(-1), logits.shape[-1]).to(logits.dtype)
    if not (torch.is_grad_enabled() and logits.requires_grad):
        return hard
    soft = F.softmax(noisy / tau, dim=-1)
    return hard + (soft - soft.detach())


class Generator(nn.Module):
    """Noise -> encoded piece. Its only input is random noise (a latent vector per piece and noise per step)."""

    def __init__(
        self, *, cells: int, states: int = 3, bar_steps: tuple[int, ...] = (16,), keys: int = 0, rnn: str = "lstm",
        latent_dim: int = 64, step_noise_dim: int = 8, hidden: int = 256, layers: int = 2, chord_hidden: int = 64,
        pitch_classes: np.ndarray | None = None, chord_block: int = 3, voice_pairs: bool = False,
        hold_state: int = 2, still_steps: int = 0,
    ):
        super().__init__()
        self.cells, self.states, self.chord_hidden, self.keys = cells, states, chord_hidden, keys
        self.chord_block = chord_block  # cells drawn together within a step (Encoding.chord_block)
        self.latent_dim, self.step_noise_dim = latent_dim, step_noise_dim
        self.hidden, self.layers, self.kind = hidden, layers, rnn
        n_state = layers * hidden * (2 if rnn == "lstm" else 1)
        self.positions = BarPositions(bar_steps)
        self.z_to_state = nn.Linear(latent_dim, n_state)  # the latent sets the initial state...
        self.z_to_input = nn.Linear(latent_dim, hidden)  # ...and colours every step's input
        self.cond_to_input = nn.Linear(self.positions.width + step_noise_dim, hidden, bias=False)
        if keys:  # the key does both too, and biases each state by its scale degree (from zero)
            self.key_to_state = nn.Embedding(keys, n_state)
            self.key_to_input = nn.Embedding(keys, hidden)
            pcs = torch.full((cells, states), -1) if pitch_classes is None else torch.as_tensor(pitch_classes)
            self.register_buffer("pitch_classes", pcs.long(), persistent=False)
            self.key_degree = nn.Parameter(torch.zeros(2, 13))  # mode, scale degree (12: a state of no pitch)
        self.prev_to_input = nn.Linear((states - 1) * cells, hidden, bias=False)
        self.rnn = rnn_class(rnn)(hidden, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, cells * states)
        # Each cell also sees its own previous state directly (shared across cells): "a sounding note
        # tends to go on" is then one small linear map instead of something the RNN must rediscover.
        self.local = nn.Linear(states - 1, states)
        if chord_hidden:
            # NADE over the pitches of one step: a running hidden pre-activation that each drawn pitch moves
            # (chord_w) and each next pitch reads (chord_v). chord_v starts at zero, so an untrained chord
            # layer changes nothing and training grows the within-chord dependence from there.
            self.chord_in = nn.Linear(hidden, chord_hidden)
            self.chord_w = nn.Parameter(torch.randn(cells, states - 1, chord_hidden) * 0.05)
            self.chord_v = nn.Parameter(torch.zeros(cells, chord_hidden, states))
        # cells are voices (states REST, TIE, onsets), drawn one at a time: score how each pair moves together
        self.pairs = VoicePairs(cells, states) if voice_pairs and cells > 1 else None
        if self.pairs is not None and (chord_block != 1 or states < 3):
            raise ValueError("voice_pairs needs voices drawn one at a time (chord_block 1)")
        # While composing, after this many steps in a row with notes sounding and none starting (the longest such
        # stretch of the style), no cell may hold on: a piece that freezes on a chord for bars is something the
        # style never does, and one such piece in 200 was most of a model's Fréchet distance. 0: no limit.
        self.hold_state, self.still_steps = hold_state, max(0, still_steps)
        # How strongly the key's scale-degree bias counts while composing (1: as trained). Set by a composing
        # model's stored ``key_guidance`` (:class:`~.compose.Composer`), never in training: teacher forcing and
        # the adversarial phase see G as it is.
        self.key_guidance = 1.0
        self.register_buffer("holds", F.one_hot(torch.tensor(hold_state), states).float(), persistent=False)

    @classmethod
    def from_config(cls, cfg: ModelConfig, enc: Encoding, conditions: Conditions) -> Generator:
        """G as ``cfg`` describes it, for pieces in ``enc`` in the meters (and keys) of ``conditions``."""
        return cls(cells=enc.cells, states=enc.states, bar_steps=bar_steps(enc, conditions),
                   keys=conditions.n_keys, pitch_classes=enc.state_pitch_classes(), rnn=cfg.rnn,
                   latent_dim=cfg.latent_dim, step_noise_dim=cfg.step_noise_dim, hidden=cfg.g_hidden,
                   layers=cfg.g_layers, chord_hidden=cfg.chord_hidden, chord_block=enc.chord_block,
                   voice_pairs=cfg.voice_pairs and enc.kind == "voices", hold_state=enc.hold_state,
                   still_steps=cfg.still_steps)

    @torch.no_grad()
    def init_from_data(self, rolls: torch.Tensor) -> None:
        """Start the per-cell path at the data's own transition table: log P(state | previous state).

        Adam moves a weight by about the learning rate per step, so log-odds of -5 for "silence stays
        silent" would otherwise take thousands of steps to reach; this makes step 0 as good as a first-order
        model of each pitch, and training spends its time on what the recurrent part adds.
        """
        r = rolls.long()
        prev = torch.cat([torch.zeros_like(r[:, :1]), r[:, :-1]], 1)
        counts = torch.zeros(self.states, self.states)
        counts.index_put_((prev.reshape(-1), r.reshape(-1)), torch.ones(r.numel()), accumulate=True)
        logp = torch.log((counts + 1) / (counts + 1).sum(1, keepdim=True))  # rows: previous state
        self.local.bias.copy_(logp[0])  # previous state 0: the input is all zeros
        for s in range(1, self.states):  # previous state s: the input is the unit vector s - 1
            self.local.weight[:, s - 1].copy_(logp[s] - logp[0])
        self.head.bias.zero_()

    def initial_state(self, z: torch.Tensor, cond: Condition | None = None):
        """Recurrent state from the latent vector ``z`` of shape ``(B, latent_dim)`` (and the key)."""
        s, key = self.z_to_state(z), _key(self.keys, cond)
        if key is not None:
            s = s + self.key_to_state(key)
        s = torch.tanh(s).view(z.shape[0], -1, self.layers, self.hidden).permute(1, 2, 0, 3)
        return (s[0].contiguous(), s[1].contiguous()) if self.kind == "lstm" else s[0].contiguous()

    def key_bias(self, cond: Condition | None) -> torch.Tensor | float:
        """``(B, cells, states)``: each state's logit bias by its scale degree in the piece's key (0 without)."""
        key = _key(self.keys, cond)
        if key is None:
            return 0.0
        tonic, mode = (key % 12).view(-1, 1, 1), (key // 12).view(-1, 1, 1)
        pcs = self.pitch_classes.unsqueeze(0)
        return self.key_degree[mode, torch.where(pcs >= 0, (pcs - tonic) % 12, 12)]

    def _piece_input(self, z: torch.Tensor, cond: Condition | None) -> torch.Tensor:
        """``(B, 1, hidden)``: what every step's input gets from the latent and the key."""
        x, key = self.z_to_input(z), _key(self.keys, cond)
        if key is not None:
            x = x + self.key_to_input(key)
        return x.unsqueeze(1)

    def _inputs(self, piece: torch.Tensor, pos: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Per-step inputs ``(B, T, hidden)`` from :meth:`_piece_input`, bar positions and step noise."""
        return piece + self.cond_to_input(torch.cat([pos, noise], -1))

    def forward(
        self, z: torch.Tensor, steps: int = 0, *, cond: Condition | None = None, tau: float = 1.0,
        temperature: float | torch.Tensor = 1.0, generator: Noise = None, carry: tuple | None = None,
        teacher: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """Compose ``steps`` grid steps from latent ``z`` ``(B, latent_dim)`` under ``cond`` (None: the first
        meter, no key).

        With ``teacher`` (a real ``(B, T, P)`` piece) each step is fed the real previous step instead of G's
        own (teacher forcing, for likelihood training); the output's ``onehot`` is then the teacher's. Both
        modes go through ``forward`` so that DistributedDataParallel synchronises their gradients.

        Pass ``carry`` back in to continue a piece seamlessly (recurrent state, last output, step count,
        each voice's sounding pitch and how many steps the music has stood still travel in it).
        ``temperature`` (one, or one per row) scales the logits before sampling (< 1: safer, > 1: wilder);
        ``tau`` only shapes the gradient. ``generator`` may be a
        :class:`BlockNoise`.
        """
        if teacher is not None:
            return self._teacher_forced(z, cond, teacher)
        b = z.shape[0]
        if carry is None:
            state, prev, start = self.initial_state(z, cond), z.new_zeros(b, self.cells, self.states - 1), 0
            heard, still = _silence(b, self.cells, z.device), torch.zeros(b, dtype=torch.long, device=z.device)
        else:
            state, prev, start, heard, still = carry
        outs, logits_all = [], []
        inv_t = inverse_temperature(temperature, b, z.device)
        bias, piece = self.key_bias(cond) * self.key_guidance, self._piece_input(z, cond)
        positions = self.positions(None if cond is None else cond.meter, b, start, steps)
        for t in range(steps):
            # noise is drawn step by step, so a piece composed in chunks equals one composed in one pass
            noise = _draw(torch.randn, (b, 1, self.step_noise_dim), generator, z.device)
            x = self._inputs(piece, positions[:, t : t + 1], noise)[:, 0]
            x = x + self.prev_to_input(prev.transpose(-1, -2).reshape(b, -1))
            h, state = run_recurrent(self.rnn, x.unsqueeze(1), state)
            base = self.head(h[:, 0]).view(b, self.cells, self.states) + self.local(prev) + bias
            if self.still_steps:
                base = base + (still >= self.still_steps).view(b, 1, 1) * (NEVER * self.holds)
            gumbel = gumbel_noise(base.shape, generator, z.device)
            if self.chord_hidden or self.pairs is not None:
                y, logits, heard = self._sample_chord(h[:, 0], base, gumbel, tau, inv_t, heard)
            else:
                logits = base * inv_t.unsqueeze(-1)
                y = straight_through(logits, gumbel, tau)
            prev = y[..., 1:]
            if self.still_steps:  # counted only where it limits anything: this loop runs once per grid step
                still = self.still_after(y.detach().argmax(-1), still)
            outs.append(y)
            logits_all.append(logits)
        carry = (state, prev, start + steps, heard, still)
        return GeneratorOutput(torch.stack(outs, 1), torch.stack(logits_all, 1), carry)

    def _teacher_forced(self, z: torch.Tensor, cond: Condition | None, real: torch.Tensor) -> GeneratorOutput:
        """Logits ``(B, T, P, S)`` for each step given the real previous steps, all steps in one recurrent
        call (fast)."""
        b, steps, _ = real.shape
        real_onehot = to_onehot(real, self.states)
        onehot = real_onehot[..., 1:]  # (B, T, P, S - 1)
        prev = torch.cat([onehot.new_zeros(b, 1, self.cells, self.states - 1), onehot[:, :-1]], 1)
        noise = torch.randn(b, steps, self.step_noise_dim, device=z.device)
        pos = self.positions(None if cond is None else cond.meter, b, 0, steps)
        x = self._inputs(self._piece_input(z, cond), pos, noise)
        x = x + self.prev_to_input(prev.transpose(-1, -2).reshape(b, steps, -1))
        h, state = run_recurrent(self.rnn, x, self.initial_state(z, cond))
        logits = self.head(h).view(b, steps, self.cells, self.states) + self.local(prev)
        if _key(self.keys, cond) is not None:
            logits = logits + self.key_bias(cond).unsqueeze(1)
        if self.chord_hidden:
            # each cell sees the real states of the cells below it in the same step: an exclusive cumsum
            moves = torch.einsum("btpk,pkh->btph", onehot, self.chord_w)
            k, pad = self.chord_block, -self.cells % self.chord_block
            moves = F.pad(moves, (0, 0, 0, pad)).view(b, steps, -1, k, moves.shape[-1]).sum(3)
            below = (moves.cumsum(2) - moves).repeat_interleave(k, 2)[:, :, : self.cells]
            a = self.chord_in(h).unsqueeze(2) + below
            logits = logits + torch.einsum("btph,phs->btps", torch.sigmoid(a), self.chord_v)
        heard = _silence(b, self.cells, real.device)
        if self.pairs is not None:
            sounding = VoicePairs.sounding(real)
            logits, heard = logits + self.pairs.teacher_forced(sounding), sounding[:, -1]
        still = torch.zeros(b, dtype=torch.long, device=real.device)
        if self.still_steps:  # as while composing: counted only where it limits anything
            moving = torch.where(self.moving(real.long()), torch.arange(steps, device=real.device), -1)
            still = steps - 1 - moving.max(1).values
        return GeneratorOutput(real_onehot, logits, (state, onehot[:, -1], steps, heard, still))

    def moving(self, states: torch.Tensor) -> torch.Tensor:
        """Whether a step of cells in ``states`` ``(..., cells)`` starts a note or sounds nothing (``(...)``)."""
        sounding = states != 0
        return ((sounding & (states != self.hold_state)).any(-1)) | ~sounding.any(-1)

    def still_after(self, states: torch.Tensor, still: torch.Tensor) -> torch.Tensor:
        """Steps in a row with notes sounding and none starting, after a step drawn as ``states`` ``(B, cells)``
        that followed ``still`` ``(B,)`` such steps."""
        return torch.where(self.moving(states), 0, still + 1)

    def _sample_chord(self, h: torch.Tensor, base: torch.Tensor, gumbel: torch.Tensor, tau: float,
                      inv_t: torch.Tensor, heard: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw one step's cells block by block from low to high: ``(onehot, logits)`` ``(B, P, S)`` and, for
        :class:`VoicePairs`, each voice's sounding pitch after the step (``heard`` is before it).

        The loop runs once per block and grid step, so it is written for few tensor operations: cells and
        states are flattened to ``P * S`` columns, and without gradients only the drawn indices are kept.
        """
        b, n, k, ns = base.shape[0], self.cells, self.chord_block, self.states
        width = max(self.chord_hidden, 1)  # without a chord layer, a hidden of zeros that moves nothing
        a = self.chord_in(h) if self.chord_hidden else h.new_zeros(b, width)
        v = (self.chord_v.permute(1, 0, 2).reshape(-1, n * ns) if self.chord_hidden
             else h.new_zeros(width, n * ns))  # (H, P*S)
        moves = (F.pad(self.chord_w, (0, 0, 1, 0)).reshape(n * ns, -1) if self.chord_hidden
                 else h.new_zeros(n * ns, width))  # (P*S, H); state 0 moves nothing
        base = (base * inv_t.unsqueeze(-1)).reshape(b, n * ns)  # logits / temperature, row by row
        sample = not (torch.is_grad_enabled() and (a.requires_grad or base.requires_grad))
        noisy = base + gumbel.reshape(b, -1).to(base.dtype) if sample else None
        step = self.pairs.step(heard) if self.pairs is not None else None
        hidden, ys, paired = [], [], []
        for lo in range(0, n, k):
            cols = slice(lo * ns, min(lo + k, n) * ns)
            hp = torch.sigmoid(a) * inv_t  # (h @ v) / temperature, row by row
            pair = 0.0  # the first voice has no voice above it
            if step is not None and lo:
                pair = (self.pairs.voice(lo, step) * inv_t).to(base.dtype)
                paired.append(pair)
            if sample:
                state = (torch.addmm(noisy[:, cols], hp, v[:, cols]) + pair).view(b, -1, ns).argmax(-1)
                yp = F.one_hot(state, ns).to(base.dtype).view(b, -1)
            else:
                logits = (torch.addmm(base[:, cols], hp, v[:, cols]) + pair).view(b, -1, ns)
                yp = straight_through(logits, gumbel[:, lo : lo + k], tau).view(b, -1)
                state = yp.detach().view(b, -1, ns).argmax(-1) if step is not None else None
            if step is not None:
                self.pairs.drawn(lo, state[:, 0], step)
            a = torch.addmm(a, yp, moves[cols])
            hidden.append(hp)
            ys.append(yp)
        y = torch.cat(ys, 1).view(b, n, ns)
        blocks = torch.stack(hidden, 1).repeat_interleave(k, 1)[:, :n]  # each cell's NADE hidden
        logits = base.view(b, n, ns) + torch.einsum("bph,hps->bps", blocks, v.view(-1, n, ns))
        if step is None:
            return y, logits, heard
        return y, logits + F.pad(torch.stack(paired, 1), (0, 0, 1, 0)), step.drawn[..., 0]


SILENT = -1  # a voice's sounding pitch when it rests
NEVER = -1e4  # a logit that no Gumbel noise lifts to the top (and half precision holds)


def _silence(batch: int, voices: int, device) -> torch.Tensor:
    """``(batch, voices)`` sounding pitches of voices before a piece begins."""
    return torch.full((batch, voices), SILENT, dtype=torch.long, device=device)


#: The interval class between two voices when either is silent, and a voice's direction when it was or is silent.
NO_INTERVAL, NO_MOTION = 12, 3


class PairStep(NamedTuple):
    """One grid step of :class:`VoicePairs` while sampling (integers)."""

    before: torch.Tensor  # (B, V): each voice's sounding pitch before the step
    drawn: torch.Tensor  # (B, V, 3): the drawn voices' pitch now, its class and their direction (times a row)
    row: torch.Tensor  # (B, pairs): where each pair's (pair, interval before) rows begin in the flat table
    lower_before: torch.Tensor  # (B, pairs): each pair's lower voice's pitch before, plus one (0: silent)
    # (both with the pairs ordered by their lower voice: VoicePairs.by_lower)


def _interval(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    return torch.where((upper >= 0) & (lower >= 0), (upper - lower) % 12, NO_INTERVAL)


def _pitch_class(pitch: torch.Tensor) -> torch.Tensor:
    return torch.where(pitch >= 0, pitch % 12, NO_INTERVAL)


def _motion(before: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
    """0 down, 1 the same pitch, 2 up, :data:`NO_MOTION` when either is silent."""
    return torch.where((before >= 0) & (now >= 0), torch.sign(now - before) + 1, NO_MOTION)


class VoicePairs(nn.Module):
    """A learned score for how each voice moves against each voice drawn before it in the same step (voices
    encoding: states REST, TIE, then one onset per pitch; pitches counted from the range's lowest).

    For the pair (upper, lower) and a candidate state of the lower voice, the score is one entry of a table
    indexed by the interval class between the two before the step and after it (12 when either is silent), the
    upper voice's direction just drawn and the lower voice's direction with that candidate (down, same, up,
    silent). Parallel fifths are (7, 7, up, up) and (7, 7, down, down); a style that avoids them teaches G a low
    score there by likelihood, a style that has them (organum, power chords) a high one. The table starts at
    zero, so it changes nothing until training moves it.
    """

    def __init__(self, voices: int, states: int):
        super().__init__()
        pairs = [(u, v) for u in range(voices) for v in range(u + 1, voices)]
        self.register_buffer("upper", torch.tensor([u for u, _ in pairs]), persistent=False)
        self.register_buffer("lower", torch.tensor([v for _, v in pairs]), persistent=False)
        # sampling keeps the pairs ordered by their lower voice, so voice v's pairs are one slice, with the
        # voices above it (0 .. v - 1) in order
        by_lower = sorted(range(len(pairs)), key=lambda k: (pairs[k][1], pairs[k][0]))
        self.register_buffer("by_lower", torch.tensor(by_lower, dtype=torch.long), persistent=False)
        i, m = NO_INTERVAL + 1, NO_MOTION + 1
        # (pair, interval before, upper's direction) select a row; (interval after, lower's direction) a column
        self.table = nn.Parameter(torch.zeros(len(pairs), i, m, i, m))
        # the column of every state of the lower voice, by the upper voice's pitch class now (12: silent) and
        # the lower voice's pitch before (0: silent, else 1 + pitch): one lookup instead of arithmetic per state
        upper_pc = torch.arange(i).view(-1, 1, 1)
        upper_pc = torch.where(upper_pc < NO_INTERVAL, upper_pc, SILENT)
        before = (torch.arange(states - 1) - 1).view(1, -1, 1)  # SILENT, then each pitch
        cand = VoicePairs.after(torch.arange(states).view(1, 1, -1), before)
        column = _interval(upper_pc, cand) * m + _motion(before, cand)
        self.register_buffer("column", column, persistent=False)  # (13, pitches + 1, states)
        # and, by state and pitch before + 1, what sampling records as each voice is drawn: the pitch the state
        # sounds, its class and the voice's direction (a table, because the loop's cost is its number of operations)
        pitch = before.view(1, -1)
        now = VoicePairs.after(torch.arange(states).view(-1, 1), pitch)  # (states, pitches + 1)
        drawn = torch.stack([now, _pitch_class(now), _motion(pitch, now) * (i * m)], -1)
        self.register_buffer("drawn_table", drawn, persistent=False)  # what PairStep.drawn gets, by state and before

    @staticmethod
    def after(state: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        """The sounding pitch of voices in ``state`` whose sounding pitch was ``before`` (a TIE keeps it)."""
        return torch.where(state > TIE, state - TIE - 1, torch.where(state == TIE, before, SILENT))

    @staticmethod
    def sounding(grid: torch.Tensor) -> torch.Tensor:
        """``(B, T, V)`` sounding pitch of each voice at each step of ``grid`` ``(B, T, V)`` (a piece begins
        silent, so a TIE at its first step sounds nothing, as when G composes)."""
        grid = grid.long()  # datasets hold uint8, which would wrap SILENT and downward steps around
        steps = torch.arange(grid.shape[1], device=grid.device).view(1, -1, 1)
        last = torch.where(grid != TIE, steps, -1).cummax(1).values  # the step of the latest rest or onset
        pitch = torch.where(grid > TIE, grid - TIE - 1, SILENT)
        return torch.where(last >= 0, pitch.gather(1, last.clamp(min=0)), SILENT)

    def step(self, before: torch.Tensor) -> PairStep:
        """What sampling one grid step needs of the voices' sounding pitches ``before`` it ``(B, V)``; the
        voices' pitches, classes and directions are filled in by :meth:`drawn` as they are drawn."""
        i, m = NO_INTERVAL + 1, NO_MOTION + 1
        pairs = self.by_lower
        upper, lower = self.upper[pairs], self.lower[pairs]
        was = _interval(before[:, upper], before[:, lower])
        return PairStep(before, before.unsqueeze(-1).repeat(1, 1, 3), (pairs * i + was) * m * (i * m),
                        before[:, lower] + 1)

    def drawn(self, v: int, state: torch.Tensor, step: PairStep) -> None:
        """Record voice ``v``'s drawn ``state`` ``(B,)`` in ``step``."""
        step.drawn[:, v] = self.drawn_table[state, step.before[:, v] + 1]

    def voice(self, v: int, step: PairStep) -> torch.Tensor:
        """``(B, S)`` scores of voice ``v``'s states against the voices above it, already :meth:`drawn`."""
        pairs = slice(v * (v - 1) // 2, v * (v + 1) // 2)  # (0, v), (1, v), ... (v - 1, v)
        upper = step.drawn[:, :v]
        row = step.row[:, pairs] + upper[..., 2]
        column = self.column[upper[..., 1], step.lower_before[:, pairs]]
        return _lookup(self.table, row.unsqueeze(-1) + column).sum(1)

    def teacher_forced(self, heard: torch.Tensor) -> torch.Tensor:
        """``(B, T, V, S)`` scores of every voice's states at every step of a real piece whose sounding pitches
        are ``heard`` ``(B, T, V)`` (from :meth:`sounding`)."""
        before = torch.cat([torch.full_like(heard[:, :1], SILENT), heard[:, :-1]], 1)
        upper, lower = self.upper, self.lower
        i, m = NO_INTERVAL + 1, NO_MOTION + 1
        was = _interval(before[..., upper], before[..., lower])
        up_moved = _motion(before[..., upper], heard[..., upper])
        row = ((torch.arange(len(lower), device=heard.device) * i + was) * m + up_moved) * (i * m)
        column = self.column[_pitch_class(heard[..., upper]), before[..., lower] + 1]
        scores = _lookup(self.table, row.unsqueeze(-1) + column)  # (B, T, pairs, S)
        return scores.new_zeros(*heard.shape, scores.shape[-1]).index_add(2, lower, scores)


def _lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table``'s entries at flat positions ``index`` (any shape). By ``gather``, whose gradient is summed in a
    fixed order: indexing (``table.view(-1)[index]``) sums repeated positions' gradients in whatever order the
    CPU's threads finish, so two runs with the same seed drifted apart."""
    return torch.gather(table.reshape(-1), 0, index.reshape(-1)).view(index.shape)


class PieceStatistics(nn.Module):
    """Statistics of a whole piece that a listener (and ``gancomposer evaluate``) judges a style by, computed
    from D's input so that G's gradients pass through them: how many notes sound (mean, spread, silent steps),
    how often notes start and at which positions of the bar, how long they last, which pitch classes and
    registers sound, which intervals sound together, how every line and the top line move from one step to
    the next, and (voices only) how often two voices move in parallel fifths or octaves.

    Why D is given them: a recurrent D learns to tell G's pieces by local detail. Trained alone against a
    pre-trained G it was right about 96 % of held-out pieces, yet its favourite quarter of G's pieces was as
    easy to tell from the style by these statistics as the rest (two-sample accuracy 0.91 against 0.92), so G,
    following D, fixed what D saw and nothing a listener hears. Every number is a sum over exact one-hot cells
    (products of them for the intervals and the top line), so with straight-through samples its gradient says
    which notes to add or drop.
    """

    MOTION = 12  # melodic steps counted up to an octave each way

    def __init__(self, enc: Encoding, positions: int):
        super().__init__()
        self.voices = enc.cells if enc.kind == "voices" else 0
        self.pitches = enc.states - 2 if self.voices else enc.cells
        p = torch.arange(self.pitches)
        self.register_buffer("fold", F.one_hot((enc.low + p) % 12, 12).float(), persistent=False)
        above = p.unsqueeze(0) > p.unsqueeze(1)  # (p, q): q sounds above p
        together = F.one_hot((p.unsqueeze(0) - p.unsqueeze(1)) % 12, 12).float() * above.unsqueeze(-1)
        self.register_buffer("together", together, persistent=False)
        step = p.unsqueeze(1) - p.unsqueeze(0)  # (p now, q before): the step from q to p
        moves = F.one_hot((step + self.MOTION).clamp(0, 2 * self.MOTION), 2 * self.MOTION + 1).float()
        self.register_buffer("moves", moves * (step.abs() <= self.MOTION).unsqueeze(-1), persistent=False)
        # parallel fifths and octaves between two voices: both move and keep the same perfect interval class
        a = torch.arange(12)
        self.register_buffer("interval", F.one_hot((a.unsqueeze(1) - a.unsqueeze(0)) % 12, 12).float(),
                             persistent=False)  # (upper's pitch class, lower's, interval class)
        self.size = 5 + positions + 12 + self.pitches + 12 + 2 * (2 * self.MOTION + 1) + (self.voices > 1)

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        """D's input ``(B, T, features)`` as its planes: the roll's ``(B, T, 2, pitches)``, an onset plane then a
        hold plane; the voices' ``(B, T, pitches + 1, voices)``, TIE then the onset of each pitch."""
        b, t, _ = x.shape
        return x.view(b, t, 2, self.pitches) if not self.voices else x.view(b, t, self.pitches + 1, self.voices)

    def planes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Which pitches sound and which start in each step, from D's input: ``(B, T, pitches)`` each for the
        roll, ``(B, T, pitches, voices)`` for the voices."""
        planes = self.cells(x)
        if not self.voices:
            return planes[:, :, 0] + planes[:, :, 1], planes[:, :, 0]
        tie, onsets = planes[:, :, 0], planes[:, :, 1:]
        sounding, now = [], torch.zeros_like(onsets[:, 0])
        for i in range(x.shape[1]):  # a tie carries on whatever the voice sounded
            now = onsets[:, i] + tie[:, i].unsqueeze(1) * now
            sounding.append(now)
        return torch.stack(sounding, 1), onsets

    def parallels(self, sounding: torch.Tensor, onsets: torch.Tensor) -> torch.Tensor:
        """``(B, 1)``: parallel fifths and octaves per step with a new note, from per-voice ``(B, T, P, V)``
        planes: two voices both move to new pitches and keep the interval class 0 or 7 they had just before."""
        pcs = torch.einsum("btpv,pc->btvc", sounding, self.fold)
        ic = torch.einsum("btuc,btvd,cdk->btuvk", pcs, pcs, self.interval)[..., [0, 7]]  # (B, T, V, V, 2)
        moved = onsets.sum(2)[:, 1:] - (onsets[:, 1:] * sounding[:, :-1]).sum(2)  # a new, different pitch
        both = moved.unsqueeze(-1) * moved.unsqueeze(-2)
        upper = torch.triu(torch.ones(self.voices, self.voices, device=pcs.device), 1)  # each pair once
        count = torch.einsum("btuv,btuvk,btuvk,uv->b", both, ic[:, 1:], ic[:, :-1], upper)
        steps = (onsets.sum((2, 3)) > 0).float().sum(1)
        return (count / (steps + 1)).unsqueeze(-1)

    def chromaticity(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2)``: how many pitch classes each piece ``x`` starts notes on, counted softly from the onsets
        ``n_c`` of each class as ``sum_c (1 - exp(-n_c))``, and the entropy of its onsets' pitch classes.

        Why apart from :meth:`forward`: D's pitch-class histogram, averaged over a batch of pieces in every key,
        cannot say how many classes *one* piece uses. The pre-trained chorale G used 9.8 a window against Bach's
        8.9, and matching these two numbers was the first change to the adversarial phase that an independent
        judge saw (docs/measurements.md). They are not among D's inputs, so D's shape (and every checkpoint) stays
        as it was."""
        cells = self.cells(x.float())  # only the onsets: planes() would also follow every tie, step by step
        onsets = cells[:, :, 1:].sum(-1) if self.voices else cells[:, :, 0]
        counts = torch.einsum("btp,pc->bc", onsets, self.fold)
        used = (1 - torch.exp(-counts)).sum(-1)
        share = counts / counts.sum(-1, keepdim=True).clamp(min=1)
        entropy = -(share * torch.log(share + 1e-6)).sum(-1)
        return torch.stack([used, entropy], -1)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """``(B, size)`` statistics of the pieces ``x`` ``(B, T, features)`` whose bar positions are ``pos``."""
        sounding, onsets = self.planes(x.float())
        extra = [self.parallels(sounding, onsets)] if self.voices > 1 else []
        if self.voices:  # from here on, all voices together
            sounding, onsets = sounding.sum(-1), onsets.sum(-1)
        voices, starts = sounding.sum(-1), onsets.sum(-1)
        total = sounding.sum((1, 2)).clamp(min=1).unsqueeze(-1)
        density = torch.stack([voices.mean(1), voices.var(1, unbiased=False), F.relu(1 - voices).mean(1),
                               starts.mean(1), torch.log1p(sounding.sum((1, 2)) / (onsets.sum((1, 2)) + 1))], -1)
        pos = pos.float()
        rhythm = torch.einsum("btw,bt->bw", pos, starts) / pos.sum(1).clamp(min=1)
        pitch_classes = torch.einsum("btp,pc->bc", sounding, self.fold) / total
        register = sounding.sum(1) / total
        harmony = torch.einsum("btp,btq,pqc->bc", sounding, sounding, self.together)
        heard = sounding.clamp(max=1)  # voices in unison sound one pitch (and 1 - 2 would flip the signs below)
        free = torch.flip(torch.cumprod(torch.flip(1 - heard, [-1]), -1), [-1])  # nothing sounds from here up
        top = heard * torch.cat([free[..., 1:], torch.ones_like(free[..., :1])], -1)
        motion = torch.einsum("btp,btq,pqk->bk", onsets[:, 1:], sounding[:, :-1], self.moves)
        melody = torch.einsum("btp,btq,pqk->bk", top[:, 1:], top[:, :-1], self.moves)
        return torch.cat([density, rhythm, pitch_classes, register, _share(harmony), _share(motion),
                          _share(melody), *extra], -1)


def _share(counts: torch.Tensor) -> torch.Tensor:
    return counts / (counts.sum(-1, keepdim=True) + 1)


class Discriminator(nn.Module):
    """Features ``(B, T, (S - 1) P)`` -> one logit per piece; ``D(x) = sigmoid(logit)`` is in (0, 1).

    A per-step projection (with the position in the bar of the piece's meter), a bidirectional recurrent layer
    over time, then mean- and max-pooling over time into features; with ``statistics``, a small network's
    reading of the piece's :class:`PieceStatistics` joins them. The features are scored by a linear layer plus,
    with keys, the projection of the key's embedding on them.
    """

    def __init__(
        self, *, features_per_step: int, bar_steps: tuple[int, ...] = (16,), keys: int = 0, rnn: str = "lstm",
        hidden: int = 128, layers: int = 1, spectral_norm: bool = False, statistics: Encoding | None = None,
    ):
        super().__init__()
        self.positions = BarPositions(bar_steps)
        norm = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        self.inp = norm(nn.Linear(features_per_step + self.positions.width, hidden))
        self.rnn = rnn_class(rnn)(hidden, hidden, layers, batch_first=True, bidirectional=True)
        width = 4 * hidden
        self.statistics = None
        if statistics is not None:
            self.statistics = PieceStatistics(statistics, self.positions.width)
            self.stats_in = norm(nn.Linear(self.statistics.size, hidden))
            self.stats_out = norm(nn.Linear(hidden, hidden))
            width += hidden
        self.out = norm(nn.Linear(width, 1))
        self.keys = keys
        if keys:  # starts at zero: an untrained D ignores the key and learns from there what it implies
            self.key_embed = nn.Embedding(keys, width)
            nn.init.zeros_(self.key_embed.weight)

    @classmethod
    def from_config(cls, cfg: ModelConfig, enc: Encoding, conditions: Conditions) -> Discriminator:
        """D as ``cfg`` describes it, for pieces in ``enc`` in the meters (and keys) of ``conditions``."""
        return cls(features_per_step=enc.features_per_step, bar_steps=bar_steps(enc, conditions),
                   keys=conditions.n_keys, rnn=cfg.rnn, hidden=cfg.d_hidden, layers=cfg.d_layers,
                   spectral_norm=cfg.spectral_norm, statistics=enc if cfg.d_statistics else None)

    def piece_statistics(self, x: torch.Tensor, cond: Condition | None = None) -> torch.Tensor:
        """The :class:`PieceStatistics` ``(B, size)`` of the pieces ``x`` (a D built with ``statistics``)."""
        b, steps, _ = x.shape
        return self.statistics(x, self.positions(None if cond is None else cond.meter, b, 0, steps))

    def forward(self, x: torch.Tensor, cond: Condition | None = None) -> DiscriminatorOutput:
        """Logits ``(B,)`` (apply ``torch.sigmoid`` for the probability that ``x`` is real) and the
        penultimate features ``(B, F)`` of the same pass, for pieces composed under ``cond``."""
        b, steps, _ = x.shape
        pos = self.positions(None if cond is None else cond.meter, b, 0, steps)
        h = F.leaky_relu(self.inp(torch.cat([x, pos.to(x.dtype)], -1)), 0.2)
        h, _ = run_recurrent(self.rnn, h)
        feats = torch.cat([h.mean(1), h.amax(1)], -1)
        if self.statistics is not None:
            s = F.leaky_relu(self.stats_in(self.statistics(x, pos).to(feats.dtype)), 0.2)
            feats = torch.cat([feats, F.leaky_relu(self.stats_out(s), 0.2)], -1)
        logits = self.out(feats).squeeze(-1)
        key = _key(self.keys, cond)
        if key is not None:
            logits = logits + (self.key_embed(key).to(feats.dtype) * feats).sum(-1)
        return DiscriminatorOutput(logits, feats)


def bar_steps(enc: Encoding, conditions: Conditions) -> tuple[int, ...]:
    """Grid steps per bar of each of the meters."""
    return tuple(enc.steps_per_bar(m) for m in conditions.meters)


def build_models(cfg: ModelConfig, enc: Encoding, conditions: Conditions) -> tuple[Generator, Discriminator]:
    """G then D (in that order, so a seed gives the same initial weights)."""
    return Generator.from_config(cfg, enc, conditions), Discriminator.from_config(cfg, enc, conditions)
