"""The CUDA paths: cuDNN against the CPU, bfloat16 autocast, double backward with cuDNN bypassed, exact
resume, and NCCL under torchrun. Skipped where no GPU is visible (so on CI); run on one with
``benchmarks/gpu_check.sh``."""

import warnings

import pytest
import torch
from safetensors.torch import load_file

from gancomposer import checkpoint
from gancomposer.compose import Composer
from gancomposer.config import apply, resolve
from gancomposer.losses import gradient_penalty, interpolate, r1_penalty, teacher_forced_nll
from gancomposer.model import Discriminator, Generator
from gancomposer.run import start
from gancomposer.train import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")

CUDA = torch.device("cuda")


def voices_g(rnn: str = "lstm") -> Generator:
    """A small G of the voices kind with every layer live (the chord layer and voice-pair table start at 0)
    and no per-step noise, so that two passes over the same piece give the same logits."""
    g = Generator(cells=4, states=9, bar_steps=(16,), hidden=32, layers=2, latent_dim=8, step_noise_dim=0,
                  chord_hidden=6, chord_block=1, voice_pairs=True, rnn=rnn)
    torch.nn.init.normal_(g.chord_v, std=1.0)
    torch.nn.init.normal_(g.pairs.table, std=1.0)
    return g


def cuda_config(**kw):
    return apply(resolve("tiny"), {"device": "cuda", **kw}, "test")


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_cudnn_teacher_forcing_and_sampling_match_the_cpu(rnn):
    torch.manual_seed(0)
    g = voices_g(rnn)
    z = torch.randn(6, 8)
    with torch.no_grad():
        onehot, logits, _ = g(z, 24)
    real = onehot.argmax(-1)
    cpu = teacher_forced_nll(g, z, real)
    cpu.backward()
    cpu_grads = {k: p.grad.clone() for k, p in g.named_parameters() if p.grad is not None}
    g.zero_grad()
    gpu_g = g.to(CUDA)
    gpu = teacher_forced_nll(gpu_g, z.to(CUDA), real.to(CUDA))
    gpu.backward()
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-4)
    for k, p in gpu_g.named_parameters():
        if k in cpu_grads:
            assert torch.allclose(p.grad.cpu(), cpu_grads[k], atol=1e-4, rtol=1e-3), k
    # free-running sampling on the GPU gives the teacher-forced logits of what it drew
    with torch.no_grad():
        drawn, drawn_logits, _ = gpu_g(z.to(CUDA), 24)
        forced = gpu_g(z.to(CUDA), teacher=drawn.argmax(-1)).logits
    assert torch.allclose(forced, drawn_logits, atol=1e-4)


def test_bfloat16_autocast_keeps_the_likelihood_and_float32_weights():
    torch.manual_seed(0)
    g = voices_g().to(CUDA)
    z = torch.randn(16, 8, device=CUDA)
    with torch.no_grad():
        real = g(z, 32).onehot.argmax(-1)
    full = teacher_forced_nll(g, z, real)
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: seen.setdefault(name, set()).add(
        (o[0] if isinstance(o, tuple) else o).dtype)) for name, m in (("rnn", g.rnn), ("head", g.head))]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        half = teacher_forced_nll(g, z, real)
    for h in hooks:
        h.remove()
    # autocast really ran the read-out in bfloat16, and the recurrent layer in float32 (autocast alone would
    # run cuDNN's in float16, whose gradients underflow without a loss scaler: model.run_recurrent) ...
    assert seen == {"head": {torch.bfloat16}, "rnn": {torch.float32}}
    assert abs(half.item() - full.item()) < 0.02 * full.item()  # ... and the loss is the same to bfloat16's precision
    half.backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in g.parameters() if p.grad is not None)


@pytest.mark.parametrize("penalty", ["r1", "gp"])
def test_double_backward_penalties_bypass_cudnn_and_match_the_cpu(penalty):
    torch.manual_seed(0)
    d = Discriminator(features_per_step=16, bar_steps=(16,), hidden=24, layers=2)
    real = (torch.rand(4, 32, 16) > 0.7).float()
    x = real if penalty == "r1" else interpolate(real, (torch.rand(4, 32, 16) > 0.7).float()).detach()
    grads = []
    for device in ("cpu", "cuda"):
        d.zero_grad()
        net, x_in = d.to(device), x.to(device).requires_grad_(True)
        with torch.backends.cudnn.flags(enabled=False):  # as train.d_step: cuDNN RNNs have no double backward
            logits = net(x_in).logits
            loss = r1_penalty(logits, x_in) if penalty == "r1" else gradient_penalty(logits, x_in)
        loss.backward()
        grads.append({k: p.grad.detach().cpu().clone() for k, p in net.named_parameters() if p.grad is not None})
        d = d.cpu()
    cpu, gpu = grads
    assert cpu.keys() == gpu.keys() and any(v.abs().sum() > 0 for v in cpu.values())
    for k in cpu:
        assert torch.allclose(gpu[k], cpu[k], atol=1e-5, rtol=1e-3), k


@pytest.mark.parametrize("options", [
    {}, {"r1_gamma": 1.0}, {"loss": "wgan-gp"}, {"estimator": "reinforce", "mle_weight": 1.0},
    {"mle_weight": 1.0, "adversarial_ratio": 0.5, "statistics_matching": 1.0, "d_statistics": True},
    {"mle_weight": 1.0, "adversarial_ratio": 0.5, "orthogonal_pull": True, "temperature_spread": 0.3},
    # today's default recipe's terms: the moving average of the matching difference lives on G's device
    {"mle_weight": 1.0, "adversarial_ratio": 1.0, "statistics_matching": 10.0, "chromaticity_matching": 10.0,
     "d_statistics": True, "temperature_spread": 0.3, "matching_smoothing": 0.9},
    {"rnn": "gru", "amp": False},
])
def test_a_run_on_cuda_writes_finite_float32_weights_that_compose_on_the_cpu(tiny_data, tmp_path, options):
    cfg = cuda_config(pretrain_iters=3, d_pretrain_iters=2, adversarial_iters=4, **options)
    state = start(tiny_data, tmp_path / "probe", cfg, progress=False, log=lambda s: None)
    assert state.device.type == "cuda"
    assert isinstance(state.amp, torch.autocast) == cfg.train.amp
    state.monitor.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = train(tiny_data, tmp_path / "run", cfg, progress=False, log=lambda s: None)
    # G's moving average and the guard's sampler are copies of G: their recurrent weights must be one block
    assert not [w for w in caught if "single contiguous chunk" in str(w.message)]
    groups, _ = checkpoint.load(s["checkpoint"])
    for net in groups.values():
        assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in net.values())
    pieces = Composer.load(tmp_path / "run", device="cpu").compose(n=2, bars=2, seed=0)
    assert len(pieces) == 2


def test_resume_continues_exactly_on_cuda(tiny_data, tmp_path):
    base = dict(pretrain_iters=4, d_pretrain_iters=2, adversarial_iters=6, checkpoint_every=5, eval_every=5,
                instance_noise=0.1, amp=False)
    whole = train(tiny_data, tmp_path / "a", cuda_config(**base), progress=False, log=lambda s: None)
    first = cuda_config(**base)
    first.train.adversarial_iters = 2
    train(tiny_data, tmp_path / "b", first, progress=False, log=lambda s: None)
    resumed = train(tiny_data, tmp_path / "b", cuda_config(**base), resume=True, progress=False, log=lambda s: None)
    a, _ = checkpoint.load(whole["checkpoint"])
    b, _ = checkpoint.load(resumed["checkpoint"])
    for model in a:
        for key in a[model]:
            assert torch.allclose(a[model][key], b[model][key], atol=1e-5, rtol=0), (model, key)


def test_one_gpu_under_torchrun_trains_over_nccl_as_without_it(tiny_data, tmp_path):
    import ddp_worker

    out = ddp_worker.launch(1, tiny_data, tmp_path, ["device=cuda", "amp=false"])
    assert "nccl" in (out / "backend-rank0.txt").read_text()
    alone = ddp_worker.train_alone(tiny_data, tmp_path / "alone", ["device=cuda", "amp=false"])
    for name in ("generator", "discriminator"):
        grouped = load_file(out / f"{name}-rank0.safetensors")
        assert all(torch.allclose(grouped[k], alone[name][k].cpu(), atol=1e-5, rtol=0) for k in grouped), name
