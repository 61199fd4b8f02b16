"""The training loop end to end on tiny data, resume, stopping rules, and each training option's effect."""

import json

import pytest
import symusic
import torch

from gancomposer import checkpoint, losses
from gancomposer.config import PRESETS, Config, TrainConfig, apply, resolve
from gancomposer.errors import UserError
from gancomposer.dataset import load_dataset
from gancomposer.losses import instance_noise_std, teacher_forced_nll
from gancomposer.model import build_models
from gancomposer.train import TrainingInterrupted, TrainingStopped, clip_gradients, train, update_ema


def tiny(**kw) -> Config:
    return apply(resolve("tiny"), kw, "test")


def poison_g_loss(monkeypatch, replace):
    """Make the classic loss's G part call ``replace(real_g_loss, logits)`` for the rest of the test."""
    real = losses.LOSSES["gan"]
    monkeypatch.setitem(losses.LOSSES, "gan", losses.AdversarialLoss(real.d, lambda f: replace(real.g, f)))


def quiet_train(data, run, cfg, **kw):
    return train(data, run, cfg, progress=False, log=lambda s: None, **kw)


def weights(path):
    groups, info = checkpoint.load(path)
    return groups, info


def test_tiny_run_writes_config_checkpoints_events_and_samples(tiny_data, tmp_path):
    run = tmp_path / "run"
    summary = quiet_train(tiny_data, run, tiny())
    cfg = resolve("tiny")
    assert summary["iterations"] == cfg.train.total_iters and summary["main"]
    stored = json.loads((run / "config.json").read_text())
    ds = load_dataset(tiny_data)  # "auto" is stored as the value it took on this data
    cfg.model.still_steps = ds.encoding.longest_still(ds.train)
    assert cfg.model.still_steps > 0 and {k: stored[k] for k in ("model", "train")} == cfg.to_dict()
    assert stored["data"]["meter"] == [4, 4] and stored["data"]["tempo"] > 0
    groups, info = weights(summary["checkpoint"])
    assert {"G", "D", "G_ema"} <= set(groups) and {k: info[k] for k in ("model", "train")} == cfg.to_dict()
    assert info["iteration"] == cfg.train.total_iters
    assert (run / "checkpoints" / "best.safetensors").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    mids = sorted((run / "samples").glob("*/sample-*.mid"))
    assert mids
    for m in mids[-cfg.train.samples:]:
        assert symusic.Score(str(m)).note_num() > 0


def test_resume_continues_exactly(tiny_data, tmp_path):
    base = dict(pretrain_iters=4, d_pretrain_iters=2, adversarial_iters=6, checkpoint_every=5, eval_every=5,
                instance_noise=0.1, d_updates=2)
    whole = quiet_train(tiny_data, tmp_path / "a", tiny(**base))
    first = tiny(**base)
    first.train.adversarial_iters = 2  # stop after 4 + 2 + 2 iterations ...
    quiet_train(tiny_data, tmp_path / "b", first)
    resumed = quiet_train(tiny_data, tmp_path / "b", tiny(**base), resume=True)  # ... and go on to 4 + 2 + 6
    a, _ = weights(whole["checkpoint"])
    b, _ = weights(resumed["checkpoint"])
    for model in ("G", "D", "G_ema"):
        for key in a[model]:
            assert torch.allclose(a[model][key], b[model][key], atol=1e-6, rtol=0), (model, key)
    sa = checkpoint.load_state(whole["checkpoint"])
    sb = checkpoint.load_state(resumed["checkpoint"])
    wall = ("seconds",)  # wall-clock time differs between runs, everything else must not
    assert {k: v for k, v in sa["progress"].items() if k not in wall} == {
        k: v for k, v in sb["progress"].items() if k not in wall}


def test_resume_continues_exactly_with_smoothed_matching(tiny_data, tmp_path):
    base = dict(pretrain_iters=3, adversarial_iters=6, checkpoint_every=3, eval_every=3, mle_weight=1.0,
                d_statistics=True, statistics_matching=1.0, chromaticity_matching=1.0, matching_smoothing=0.9)
    whole = quiet_train(tiny_data, tmp_path / "a", tiny(**base))
    first = tiny(**base)
    first.train.adversarial_iters = 3
    quiet_train(tiny_data, tmp_path / "b", first)
    resumed = quiet_train(tiny_data, tmp_path / "b", tiny(**base), resume=True)
    a, _ = weights(whole["checkpoint"])
    b, _ = weights(resumed["checkpoint"])
    assert all(torch.equal(a[m][k], b[m][k]) for m in ("G", "D", "G_ema") for k in a[m])
    errors = checkpoint.load_state(resumed["checkpoint"])["progress"]["matching_errors"]
    assert set(errors) == {"statistics_matching", "chromaticity_matching"} and len(errors["chromaticity_matching"]) == 2


def test_same_seed_same_run_and_existing_run_needs_resume(tiny_data, tmp_path):
    cfg = dict(pretrain_iters=3, adversarial_iters=3)
    a = quiet_train(tiny_data, tmp_path / "a", tiny(**cfg))
    b = quiet_train(tiny_data, tmp_path / "b", tiny(**cfg))
    ga, gb = weights(a["checkpoint"])[0]["G"], weights(b["checkpoint"])[0]["G"]
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    with pytest.raises(UserError, match="--resume"):
        quiet_train(tiny_data, tmp_path / "a", tiny(**cfg))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    calls = []

    def poisoned(g_loss, logits):
        calls.append(1)
        return g_loss(logits) * (float("nan") if len(calls) > 3 else 1.0)

    poison_g_loss(monkeypatch, poisoned)
    with pytest.raises(TrainingStopped, match="G's loss became nan.*last good checkpoint.*step-000003"):
        quiet_train(tiny_data, tmp_path / "r", tiny(pretrain_iters=0, adversarial_iters=10, checkpoint_every=3))
    kept = sorted((tmp_path / "r" / "checkpoints").glob("step-*.safetensors"))
    assert [k.name for k in kept] == ["step-000003.safetensors"]
    g = weights(kept[0])[0]["G"]
    assert all(torch.isfinite(v).all() for v in g.values())


def test_collapse_stops_with_advice(tiny_data, tmp_path):
    cfg = tiny(pretrain_iters=0, adversarial_iters=400, lr_g=0.0, lr_d=0.02, collapse_patience=5, checkpoint_every=1000,
               eval_every=1000)
    with pytest.raises(TrainingStopped, match="collapse.*label_smoothing"):
        quiet_train(tiny_data, tmp_path / "c", cfg)


def test_ctrl_c_saves_and_resume_goes_on(tiny_data, tmp_path, monkeypatch):
    calls = []

    def interrupt(g_loss, logits):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return g_loss(logits)

    with monkeypatch.context() as patched:
        poison_g_loss(patched, interrupt)
        with pytest.raises(TrainingInterrupted, match="--resume"):
            quiet_train(tiny_data, tmp_path / "i", tiny(pretrain_iters=2, adversarial_iters=6, checkpoint_every=100))
    saved = sorted((tmp_path / "i" / "checkpoints").glob("step-*.safetensors"))
    assert [s.name for s in saved] == ["step-000004.safetensors"]  # 2 pre-training + 2 finished G updates
    summary = quiet_train(tiny_data, tmp_path / "i", tiny(pretrain_iters=2, adversarial_iters=6, checkpoint_every=100),
                          resume=True)
    assert summary["iterations"] == 8


def test_d_steps_and_ttur_learning_rates(tiny_data, tmp_path):
    s = quiet_train(tiny_data, tmp_path / "t", tiny(pretrain_iters=0, adversarial_iters=4, d_updates=3, lr_g=1e-4,
                                                    lr_d=4e-4))
    state = checkpoint.load_state(s["checkpoint"])
    d_step = [v["step"] for v in state["opt_d"]["state"].values()][0]
    g_step = [v["step"] for v in state["opt_g"]["state"].values()][0]
    assert (float(d_step), float(g_step)) == (12.0, 4.0)
    assert state["opt_g"]["param_groups"][0]["lr"] == 1e-4 and state["opt_d"]["param_groups"][0]["lr"] == 4e-4


def test_the_voice_pair_table_learns_at_its_own_rate_and_keeps_it_on_resume(tiny_data, tmp_path):
    def table_after(scale, run):
        s = quiet_train(tiny_data, tmp_path / run, tiny(pretrain_iters=1, adversarial_iters=1, pairs_lr_scale=scale))
        return weights(s["checkpoint"])[0]["G"]["pairs.table"], s["checkpoint"]

    slow, one = table_after(1.0, "slow")
    fast, path = table_after(10.0, "fast")
    assert len(checkpoint.load_state(one)["opt_g"]["param_groups"]) == 1  # as runs made before the setting
    assert slow.abs().max() > 0  # Adam's first steps move each weight with a gradient by about its rate
    assert 5 < fast.abs().max() / slow.abs().max() < 15
    cfg = tiny(pretrain_iters=1, adversarial_iters=1, pairs_lr_scale=10.0).train
    state = checkpoint.load_state(path)
    assert [g["lr"] for g in state["opt_pre"]["param_groups"]] == pytest.approx([cfg.pretrain_lr, 10 * cfg.pretrain_lr])
    # the adversarial phase has its own multiple (default 1); -1 takes pre-training's, as runs made before it
    assert [g["lr"] for g in state["opt_g"]["param_groups"]] == pytest.approx([cfg.lr_g, cfg.lr_g])
    for pre, scale, expected in ((10.0, 3.0, 3.0), (10.0, -1.0, 10.0), (1.0, 3.0, 3.0)):
        s = quiet_train(tiny_data, tmp_path / f"adv{pre}-{scale}", tiny(
            pretrain_iters=1, adversarial_iters=1, pairs_lr_scale=pre, adversarial_pairs_lr_scale=scale))
        groups = checkpoint.load_state(s["checkpoint"])["opt_g"]["param_groups"]
        assert [g["lr"] for g in groups] == pytest.approx([cfg.lr_g, expected * cfg.lr_g])
    # a run written before the table had its own group cannot resume: said in one line, not a traceback
    state["opt_g"]["param_groups"][0]["params"] += state["opt_g"]["param_groups"].pop()["params"]
    torch.save(state, checkpoint.state_path(path))
    with pytest.raises(UserError, match="earlier gancomposer"):
        quiet_train(tiny_data, tmp_path / "fast", tiny(pretrain_iters=1, adversarial_iters=3, pairs_lr_scale=10.0),
                    resume=True)


def test_d_pretraining_trains_d_alone(tiny_data, tmp_path):
    g_only = quiet_train(tiny_data, tmp_path / "g", tiny(pretrain_iters=3, adversarial_iters=0))
    both = quiet_train(tiny_data, tmp_path / "gd", tiny(pretrain_iters=3, d_pretrain_iters=4, adversarial_iters=0))
    a, _ = weights(g_only["checkpoint"])
    b, info = weights(both["checkpoint"])
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])  # G untouched...
    assert not all(torch.equal(a["D"][k], b["D"][k]) for k in a["D"])  # ...while D learnt
    state = checkpoint.load_state(both["checkpoint"])
    assert [float(v["step"]) for v in state["opt_d"]["state"].values()][0] == 4.0
    assert (info["progress"]["d_pretrain_iters"], info["progress"]["adversarial_iters"], info["iteration"]) == (4, 0, 7)


def test_d_freezes_while_far_ahead(tiny_data, tmp_path):
    start = quiet_train(tiny_data, tmp_path / "s", tiny(pretrain_iters=2, adversarial_iters=0))
    frozen = quiet_train(tiny_data, tmp_path / "f", tiny(pretrain_iters=2, adversarial_iters=3, d_freeze_below=1.0))
    live = quiet_train(tiny_data, tmp_path / "l", tiny(pretrain_iters=2, adversarial_iters=3, d_freeze_below=1e-9))
    d0, df, dl = (weights(x["checkpoint"])[0]["D"] for x in (start, frozen, live))
    assert all(torch.equal(d0[k], df[k]) for k in d0)  # every fake scores below 1: D always sits out
    assert not all(torch.equal(d0[k], dl[k]) for k in d0)  # no fake scores below 1e-9: D always learns
    state = checkpoint.load_state(frozen["checkpoint"])
    assert state["progress"]["d_frozen_iters"] == 3 and not state["opt_d"]["state"]
    assert checkpoint.load_state(live["checkpoint"])["progress"]["d_frozen_iters"] == 0


@pytest.mark.parametrize("options", [
    dict(loss="wgan-gp", d_updates=2), dict(loss="hinge", spectral_norm=True), dict(loss="lsgan"),
    dict(r1_gamma=1.0, label_smoothing=0.1, instance_noise=0.2), dict(feature_matching=1.0, grad_clip=0.5),
    dict(rnn="gru", ema_decay=0.0, voice_pairs=False), dict(mle_weight=1.0, d_updates=2),
    dict(r1_gamma=1.0, d_freeze_below=0.6), dict(loss="wgan-gp", d_freeze_below=0.6),  # penalties while frozen
    dict(estimator="reinforce", mle_weight=1.0, adversarial_temperature=0.8), dict(estimator="reinforce", loss="hinge"),
    dict(mle_weight=1.0, adversarial_ratio=0.5, statistics_matching=1.0, d_statistics=True),
    dict(mle_weight=1.0, statistics_matching=1.0, chromaticity_matching=1.0, feature_matching=0.1, d_statistics=True),
    dict(mle_weight=1.0, entropy_anchor=50.0), dict(mle_weight=1.0, adversarial_ratio=0.0, entropy_anchor=50.0),
    dict(entropy_anchor=50.0),  # beside the plain adversarial loss: no likelihood anchor (mle_weight=0)
    dict(mle_weight=1.0, adversarial_ratio=0.5, orthogonal_pull=True, statistics_matching=1.0, d_statistics=True,
         temperature_spread=0.3),
    dict(estimator="reinforce", mle_weight=1.0, temperature_spread=0.3),
    dict(mle_weight=1.0, statistics_matching=1.0, chromaticity_matching=1.0, d_statistics=True,
         matching_smoothing=0.9),
])
def test_every_option_trains(tiny_data, tmp_path, options):
    s = quiet_train(tiny_data, tmp_path / "o", tiny(pretrain_iters=2, adversarial_iters=3, **options))
    groups, info = weights(s["checkpoint"])
    assert all(torch.isfinite(v).all() for g in groups.values() for v in g.values())
    assert ("G_ema" in groups) == (options.get("ema_decay", 0.999) > 0)


def test_entropy_anchor_measures_the_pre_trained_g_on_its_own_pieces(tiny_data, tmp_path):
    import math

    s = quiet_train(tiny_data, tmp_path / "e", tiny(pretrain_iters=2, d_pretrain_iters=3, adversarial_iters=2,
                                                    mle_weight=1.0, entropy_anchor=50.0))
    progress = checkpoint.load_state(s["checkpoint"])["progress"]
    # D's 3 pre-training batches and the first adversarial D update: all drawn from the pre-trained G
    assert progress["entropy_pre_n"] == 4
    assert 0 < progress["entropy_pre"] < math.log(load_dataset(tiny_data).encoding.states)
    # set on resuming a run already in its adversarial phase, it measures the G it resumes with
    base = dict(pretrain_iters=2, adversarial_iters=2, mle_weight=1.0)
    quiet_train(tiny_data, tmp_path / "r", tiny(**base))
    s = quiet_train(tiny_data, tmp_path / "r", tiny(**{**base, "adversarial_iters": 4, "entropy_anchor": 50.0}),
                    resume=True)
    progress = checkpoint.load_state(s["checkpoint"])["progress"]
    assert progress["adversarial_iters"] == 4 and progress["entropy_pre_n"] == 1 and progress["entropy_pre"] > 0


def test_pretraining_lowers_the_likelihood_loss(tiny_data, tmp_path):

    ds = load_dataset(tiny_data)
    real = torch.from_numpy(ds.train[:32].copy())
    cfg = tiny(pretrain_iters=40, adversarial_iters=0, ema_decay=0.0)

    def nll(g):
        torch.manual_seed(0)
        return teacher_forced_nll(g, torch.randn(len(real), cfg.model.latent_dim), real).item()

    torch.manual_seed(cfg.train.seed)
    fresh, _ = build_models(cfg.model, ds.encoding, ds.conditions)
    s = quiet_train(tiny_data, tmp_path / "p", cfg)
    trained, _ = build_models(cfg.model, ds.encoding, ds.conditions)
    trained.load_state_dict(weights(s["checkpoint"])[0]["G"])
    assert nll(trained) < 0.7 * nll(fresh)


def test_ema_clip_and_instance_noise_schedule():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    update_ema(a, b, 0.9)
    assert torch.allclose(a.weight, 0.9 * before + 0.1 * b.weight)
    b.weight.grad = torch.full((2, 2), 10.0)
    b.bias.grad = torch.zeros(2)
    assert clip_gradients(b.parameters(), 1.0) == pytest.approx(20.0)  # reports the norm before clipping
    assert torch.linalg.vector_norm(b.weight.grad).item() == pytest.approx(1.0, rel=1e-4)
    cfg = TrainConfig(instance_noise=0.4, instance_noise_iters=100)
    assert [instance_noise_std(cfg, s) for s in (0, 50, 100, 200)] == pytest.approx([0.4, 0.2, 0.0, 0.0])


def test_config_resolution_refuses_unknown_keys_and_bad_types(tmp_path):
    assert resolve("tiny").model.g_hidden == PRESETS["tiny"]["g_hidden"]
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\nadversarial_iters = 7\nloss = 'hinge'\n[model]\nd_hidden = 9\n")
    cfg = resolve("tiny", str(toml), ["d_updates=3", "spectral_norm=true", "lr_d=1e-3"])
    t, m = cfg.train, cfg.model
    assert (t.adversarial_iters, t.loss, t.d_updates, m.spectral_norm, t.lr_d, m.d_hidden) == (7, "hinge", 3, True,
                                                                                              1e-3, 9)
    with pytest.raises(UserError, match="unknown setting 'stepz'"):
        resolve(None, None, ["stepz=3"])
    with pytest.raises(UserError, match="unknown setting 'steps' \\(renamed to 'adversarial_iters'\\)"):
        resolve(None, None, ["steps=3"])
    with pytest.raises(UserError, match="expected int"):
        resolve(None, None, ["adversarial_iters=many"])
    with pytest.raises(UserError, match="loss='bce'"):
        resolve(None, None, ["loss=bce"])
    with pytest.raises(UserError, match="unknown preset"):
        resolve("huge")


def test_mle_anchor_keeps_the_likelihood_during_adversarial_training(tiny_data, tmp_path):

    ds = load_dataset(tiny_data)
    real = torch.from_numpy(ds.train[:32].copy())
    nll = {}
    for weight in (0.0, 20.0):
        cfg = tiny(pretrain_iters=30, adversarial_iters=15, lr_g=5e-3, mle_weight=weight, ema_decay=0.0)
        s = quiet_train(tiny_data, tmp_path / f"m{weight}", cfg)
        g, _ = build_models(cfg.model, ds.encoding, ds.conditions)
        g.load_state_dict(weights(s["checkpoint"])[0]["G"])
        torch.manual_seed(0)
        nll[weight] = teacher_forced_nll(g, torch.randn(len(real), cfg.model.latent_dim), real).item()
    assert nll[20.0] < nll[0.0]


def balanced_run(net: torch.nn.Module, ratio: float):
    """The little of a run that ``balance.g_gradients`` reads: G (``net``), its settings, one process."""
    from types import SimpleNamespace

    from gancomposer.distributed import World
    from gancomposer.run import Progress

    return SimpleNamespace(G=net, progress=Progress(), cfg=TrainConfig(adversarial_ratio=ratio, mle_weight=1.0),
                           world=World(0, 1, 0), device=torch.device("cpu"))


def test_orthogonal_pull_takes_the_held_directions_out_of_ds_pull_before_rescaling_it():
    from gancomposer.balance import g_gradients

    net = torch.nn.Linear(4, 1, bias=False)
    a, b = torch.tensor([[1.0, 2.0, 0.0, 3.0]]), torch.tensor([[0.0, 0.0, 5.0, 0.0]])
    h1, h2 = torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    run = balanced_run(net, 2.0)
    # the held quantities' gradients h1 and h2 span the first two weights: D's pull keeps only the fourth's part
    g_gradients(run, 100 * net(a).sum(), net(b).sum(), held=[net(h1).sum(), 3 * net(h2).sum()])
    pull = net.weight.grad - b
    assert torch.allclose(pull, torch.tensor([[0.0, 0.0, 0.0, 10.0]]), atol=1e-5)  # 2 x the anchor's length 5
    # a held direction the others already span adds nothing; an unheld pull is rescaled as it is
    net.weight.grad = None
    g_gradients(run, 100 * net(a).sum(), net(b).sum(), held=[net(h1).sum(), net(h1).sum()])
    pull = net.weight.grad - b
    assert pull[0, 0].abs() < 1e-5 and torch.linalg.vector_norm(pull) == pytest.approx(10.0)
    assert torch.allclose(pull[0, 1:] / pull.norm(), a[0, 1:] / a[0, 1:].norm(), atol=1e-6)


def test_temperature_spread_draws_each_piece_at_its_own_temperature_around_the_phases():
    from types import SimpleNamespace

    from gancomposer.run import Run

    stand_in = SimpleNamespace(adversarial_temperature=lambda: 0.9, cfg=TrainConfig(temperature_spread=0.3),
                               device=torch.device("cpu"))
    torch.manual_seed(0)
    t = Run.piece_temperatures(stand_in, 4000)
    u = torch.log(t / 0.9) / 0.3  # uniform in [-1, 1]: as often hotter as cooler, by the same factors
    assert t.shape == (4000,) and u.min() >= -1 - 1e-5 and u.max() <= 1 + 1e-5
    assert u.min() < -0.99 and u.max() > 0.99 and abs(u.mean()) < 0.05 and u.std() == pytest.approx(3 ** -0.5, abs=0.02)
    torch.manual_seed(0)
    assert torch.equal(Run.piece_temperatures(stand_in, 4000), t)  # seeded: the same draws
    stand_in.cfg = TrainConfig(temperature_spread=0.0)
    assert Run.piece_temperatures(stand_in, 4) == 0.9  # no spread: one temperature, as before
    with pytest.raises(UserError, match="temperature_spread"):
        tiny(temperature_spread=-0.1).validate()


def test_adversarial_ratio_sets_the_adversarial_gradient_to_a_multiple_of_the_anchors():
    from gancomposer.balance import g_gradients

    net = torch.nn.Linear(3, 1, bias=False)
    a, b = torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.0, 3.0, 0.0]])
    for ratio in (0.5, 2.0):
        net.weight.grad = None
        run = balanced_run(net, ratio)
        # the adversarial term's gradient is 100 * a, 45 times as long as the anchor's (b)
        weight = g_gradients(run, 100 * net(a).sum(), net(b).sum())
        assert weight == pytest.approx(ratio * 3.0 / (100 * 5 ** 0.5))
        adversarial = net.weight.grad - b  # the anchor's part is b, unscaled
        assert torch.linalg.vector_norm(adversarial) == pytest.approx(ratio * 3.0)
        assert torch.allclose(adversarial / adversarial.norm(), a / a.norm())  # its direction kept
        assert run.progress.adversarial_weight == weight
    # a term of its own weight (the entropy anchor) is added as it is, and leaves the ratio alone
    net.weight.grad = None
    c = torch.tensor([[0.0, 0.0, 7.0]])
    weight = g_gradients(run, 100 * net(a).sum(), net(b).sum(), net(c).sum())
    assert weight == pytest.approx(2.0 * 3.0 / (100 * 5 ** 0.5))
    assert torch.allclose(net.weight.grad, b + c + weight * 100 * a)
    with pytest.raises(UserError, match="adversarial_ratio"):
        tiny(adversarial_ratio=1.0, mle_weight=0.0).validate()
    with pytest.raises(UserError, match="orthogonal_pull"):
        tiny(orthogonal_pull=True).validate()  # the tiny preset does not rescale D's pull (adversarial_ratio=0)
    with pytest.raises(UserError, match="d_statistics"):  # nothing to match without D's statistics
        tiny(statistics_matching=1.0).validate()
    from gancomposer.config import from_stored

    assert resolve(None).train.adversarial_ratio == 1.0  # the default recipe balances the two gradients ...
    assert from_stored({"model": {}, "train": {}}).train.adversarial_ratio == 0.0  # ... runs from before did not
    assert resolve(None).train.adversarial_temperature == 0.0  # tuned where the pre-trained G is best ...
    assert from_stored({"model": {}, "train": {}}).train.adversarial_temperature == 1.0  # ... runs from before: 1.0


def scripted_guard(monkeypatch, qualities: dict[int, float], streams: dict[str, dict[int, float]] | None = None):
    """The guard scores G by a script: ``qualities`` by the adversarial iterations done when those weights were
    first scored (a function of the weights, so a resumed run, a rollback and the final choice between the
    guard's best and the pre-trained G see the same scores); ``streams`` overrides it for one stream's pieces."""
    from gancomposer import guard

    first_scored: dict[int, int] = {}

    def score(run, sampler=None, temperature=1.0, stream="guard", index=0):
        net = sampler or run.sampler
        made = first_scored.setdefault(hash(b"".join(p.detach().numpy().tobytes() for p in net.parameters())),
                                       run.progress.adversarial_iters)
        # the temperature is tuned on its own pieces, where this script peaks at 0.9
        q = {**qualities, **(streams or {}).get(stream, {})}[made] - abs(temperature - 0.9) * (stream == "tuning")
        return {"quality": q, "overlap_area": q, "two_sample_accuracy": 0.0, "frechet_distance": 1.0}

    monkeypatch.setattr(guard, "score", score)


GUARDED = dict(pretrain_iters=2, adversarial_iters=12, guard_every=2, guard_patience=2, guard_lr_decay=0.5,
               guard_rollbacks=3, checkpoint_every=5, eval_every=5, lr_g=1e-3)
#  start: 0.5; better at 2 (0.6, kept); worse at 4 and 6: roll back to iteration 2's weights, lr_g halved; ...
SCRIPT = {0: 0.5, 2: 0.6, 4: 0.4, 6: 0.3, 8: 0.7, 10: 0.2, 12: 0.1}


def test_quality_guard_keeps_the_best_and_rolls_back_when_worse(tiny_data, tmp_path, monkeypatch):
    scripted_guard(monkeypatch, SCRIPT)
    s = quiet_train(tiny_data, tmp_path / "g", tiny(**GUARDED))
    g = s["guard"]
    assert (g["best_adversarial_iters"], g["best_quality"], g["pretrained_quality"]) == (8, 0.7, 0.5)
    assert g["gain"] == pytest.approx(0.2) and g["rollbacks"] == 2 and not g["stopped_early"]
    best, info = weights(tmp_path / "g" / "checkpoints" / "best.safetensors")
    assert info["guard"]["adversarial_iters"] == 8 and info["progress"]["adversarial_iters"] == 8
    state = checkpoint.load_state(s["checkpoint"])
    assert state["progress"]["lr_g_scale"] == 0.25 and state["opt_g"]["param_groups"][0]["lr"] == 2.5e-4
    # at the end the default model's temperature was tuned on fresh 8-bar pieces (the script peaks at 0.9)
    assert info["temperature"] == 0.9 and g["temperature"] == 0.9 and set(info["temperature_sweep"]) == {
        "0.8", "0.85", "0.9", "0.95", "1.0", "1.05", "1.1"}
    from gancomposer.compose import Composer

    assert Composer.load(tmp_path / "g").temperature == 0.9
    # 10 and 12 were worse than 8 twice in a row: the run ended rolled back to iteration 8's weights
    last, _ = weights(s["checkpoint"])
    assert state["progress"]["guard_rollbacks"] == 2
    assert all(torch.equal(best[m][k], last[m][k]) for m in ("G", "D", "G_ema") for k in best[m])


def test_quality_guard_shows_on_the_progress_bar(tiny_data, tmp_path, monkeypatch):
    from gancomposer.monitor import Monitor

    shown = []
    monkeypatch.setattr(Monitor, "status", lambda self, text: shown.append(text))
    scripted_guard(monkeypatch, SCRIPT)
    quiet_train(tiny_data, tmp_path / "g", tiny(**GUARDED))
    # the bar is written every 5 iterations of 14 (2 of them likelihood ones): at adversarial iteration 8 the guard
    # had kept iteration 2 (0.6 against the pre-trained 0.5) and rolled back once (4 and 6 were worse)
    assert [t.split(" it/s")[1] for t in shown] == [" guard +0.100 (iteration 2), rollbacks 0",
                                                     " guard +0.100 (iteration 2), rollbacks 1"]


def test_quality_guard_scores_both_sets_and_rolls_back_only_beyond_its_tolerance(tiny_data, tmp_path, monkeypatch):
    # iteration 2 draws a lucky 0.6 on the first set but 0.4 on the second: 0.5 pooled, not above the start's 0.5
    scripted_guard(monkeypatch, {0: 0.5, 2: 0.6, 4: 0.48, 6: 0.49, 8: 0.47, 10: 0.55},
                   streams={"confirm": {2: 0.4}})
    cfg = tiny(**{**GUARDED, "adversarial_iters": 10, "guard_tolerance": 0.05})
    g = quiet_train(tiny_data, tmp_path / "g", cfg)["guard"]
    # 4-8 lie within the tolerance of the best: no rollback, and the phase went on to 10
    assert (g["best_adversarial_iters"], g["best_quality"], g["rollbacks"]) == (10, 0.55, 0)
    _, info = weights(tmp_path / "g" / "checkpoints" / "best.safetensors")
    assert info["guard"]["first_quality"] == 0.55 and info["guard"]["quality"] == 0.55
    # with no tolerance, 4 and 6 count as worse: a rollback to the start's weights
    g = quiet_train(tiny_data, tmp_path / "h", tiny(**{**GUARDED, "adversarial_iters": 10, "guard_tolerance": 0.0}))
    assert g["guard"]["rollbacks"] == 1


def test_the_default_model_must_beat_the_pre_trained_g_on_fresh_pieces(tiny_data, tmp_path, monkeypatch):
    scripted_guard(monkeypatch, {0: 0.5, 2: 0.6, 4: 0.55})
    cfg = tiny(**{**GUARDED, "adversarial_iters": 4})
    g = quiet_train(tiny_data, tmp_path / "g", cfg)["guard"]
    assert g["best_adversarial_iters"] == 2 and g["fresh"] == {
        "kept": "adversarial", "temperature": 0.9, "adversarial_quality": 0.6, "pretrained_quality": 0.5}
    _, info = weights(tmp_path / "g" / "checkpoints" / "best.safetensors")
    assert info["kept"] == "adversarial" and info["progress"]["adversarial_iters"] == 2
    # the tuning stream only chooses each one's temperature: a poor draw of iteration 2 there decides nothing
    scripted_guard(monkeypatch, {0: 0.5, 2: 0.6, 4: 0.55}, streams={"tuning": {2: 0.45}})
    assert quiet_train(tiny_data, tmp_path / "t", cfg)["guard"]["fresh"]["kept"] == "adversarial"
    # on the final sets iteration 2 scores below the pre-trained G: the run hands over the latter
    scripted_guard(monkeypatch, {0: 0.5, 2: 0.6, 4: 0.55}, streams={"final": {2: 0.45}})
    g = quiet_train(tiny_data, tmp_path / "h", cfg)["guard"]
    assert g["best_adversarial_iters"] == 2 and g["fresh"]["kept"] == "pretrained"
    best, info = weights(tmp_path / "h" / "checkpoints" / "best.safetensors")
    pretrained, _ = weights(tmp_path / "h" / "checkpoints" / "pretrained.safetensors")
    assert info["kept"] == "pretrained" and info["progress"]["adversarial_iters"] == 0 and info["temperature"] == 0.9
    assert all(torch.equal(best["G"][k], pretrained["G"][k]) for k in best["G"])
    from gancomposer.cli import _guard_summary

    assert "the end of pre-training" in _guard_summary(g) and "so the pre-trained G was kept" in _guard_summary(g)


def test_quality_guard_rolls_back_to_the_kept_weights_not_the_latest(tiny_data, tmp_path, monkeypatch):
    scripted_guard(monkeypatch, {0: 0.5, 2: 0.6, 4: 0.4, 6: 0.3})
    cfg = tiny(**{**GUARDED, "adversarial_iters": 6, "guard_rollbacks": 0})  # the first rollback ends the phase
    s = quiet_train(tiny_data, tmp_path / "g", cfg)
    assert s["guard"]["stopped_early"] and s["iterations"] == 2 + 6
    best, _ = weights(tmp_path / "g" / "checkpoints" / "best.safetensors")
    last, _ = weights(s["checkpoint"])
    assert all(torch.equal(best["G"][k], last["G"][k]) for k in best["G"])


def test_adversarial_phase_draws_g_where_the_pre_trained_g_scores_best(tiny_data, tmp_path, monkeypatch):
    from gancomposer import guard
    from gancomposer.model import Generator

    scored = {"guard": set(), "confirm": set(), "tuning": set()}

    def score(run, sampler=None, temperature=1.0, stream="guard", index=0):
        scored[stream].add(temperature)
        q = 0.5 - abs(temperature - 0.9) if stream == "tuning" else 0.5 + 0.01 * run.progress.adversarial_iters
        return {"quality": q, "overlap_area": q, "two_sample_accuracy": 0.0, "frechet_distance": 1.0}

    drawn, forward = [], Generator.forward

    def spy(self, *args, temperature=1.0, teacher=None, **kwargs):
        if teacher is None and self.training:  # training's own pieces, not samples or scores (drawn in eval mode)
            drawn.append(float(temperature))
        return forward(self, *args, temperature=temperature, teacher=teacher, **kwargs)

    monkeypatch.setattr(guard, "score", score)
    monkeypatch.setattr(Generator, "forward", spy)
    cfg = tiny(**{**GUARDED, "adversarial_iters": 4, "d_pretrain_iters": 2, "tune_temperature": False,
                  "adversarial_temperature": 0.0})
    s = quiet_train(tiny_data, tmp_path / "auto", cfg)
    assert checkpoint.load_state(s["checkpoint"])["progress"]["adversarial_temperature"] == 0.9
    assert weights(tmp_path / "auto" / "checkpoints" / "pretrained.safetensors")[1]["progress"][
        "adversarial_temperature"] == 0.9  # in the models' own metadata too
    assert scored == {"guard": {0.9}, "confirm": {0.9}, "tuning": set(guard.TEMPERATURES)}
    assert len(drawn) == 2 + 4 * 2 and set(drawn) == {0.9}  # D's pre-training, then D's and G's updates
    # a temperature that is set is used as it is, with nothing tuned
    scored, drawn[:] = {"guard": set(), "confirm": set(), "tuning": set()}, []
    quiet_train(tiny_data, tmp_path / "set", tiny(**{**GUARDED, "adversarial_iters": 4, "tune_temperature": False,
                                                     "adversarial_temperature": 1.1}))
    assert scored["tuning"] == set() and scored["guard"] == {1.1} and set(drawn) == {1.1}
    assert weights(tmp_path / "set" / "checkpoints" / "pretrained.safetensors")[1]["progress"][
        "adversarial_temperature"] == 1.1


def test_resume_stays_exact_across_guard_rollbacks(tiny_data, tmp_path, monkeypatch):
    scripted_guard(monkeypatch, SCRIPT)
    whole = quiet_train(tiny_data, tmp_path / "a", tiny(**GUARDED))
    first = tiny(**GUARDED)
    first.train.adversarial_iters = 8  # stop after the first rollback (at 6) and the guard's check of 8 ...
    quiet_train(tiny_data, tmp_path / "b", first)
    assert checkpoint.load_state(tmp_path / "b" / "checkpoints" / "step-000010.safetensors")["progress"][
        "guard_rollbacks"] == 1
    resumed = quiet_train(tiny_data, tmp_path / "b", tiny(**GUARDED), resume=True)  # ... which is not repeated
    a, _ = weights(whole["checkpoint"])
    b, _ = weights(resumed["checkpoint"])
    assert all(torch.equal(a[m][k], b[m][k]) for m in ("G", "D", "G_ema") for k in a[m])
    assert resumed["guard"] == whole["guard"]


def test_the_guard_scores_with_the_evaluate_code(tiny_data, tmp_path):
    s = quiet_train(tiny_data, tmp_path / "r", tiny(pretrain_iters=3, adversarial_iters=2, guard_every=1))
    _, info = weights(tmp_path / "r" / "checkpoints" / "best.safetensors")
    row = info["guard"]
    assert 0 <= row["overlap_area"] <= 1 and 0 <= row["two_sample_accuracy"] <= 1 and row["frechet_distance"] >= 0
    assert row["quality"] == pytest.approx(row["overlap_area"] - row["two_sample_accuracy"])
    assert s["guard"]["pretrained_quality"] <= s["guard"]["best_quality"]


def test_balance_scale_moves_against_ds_held_out_accuracy():
    from gancomposer.balance import MIN_SCALE, scale_after

    assert scale_after(1.0, 0.9, 0.7, 0.5) < 1.0  # D more accurate than the target: its learning rate falls
    assert scale_after(0.5, 0.5, 0.7, 0.5) > 0.5  # less accurate: it rises again ...
    assert scale_after(1.0, 0.5, 0.7, 0.5) == 1.0  # ... but never above lr_d
    assert scale_after(MIN_SCALE, 1.0, 0.0, 10.0) == MIN_SCALE


def test_balance_follows_ds_accuracy_on_held_out_pieces(tiny_data, tmp_path, monkeypatch):
    from gancomposer import balance

    base = dict(pretrain_iters=2, adversarial_iters=20, lr_d=1e-3, balance_rate=2.0)
    scales = {}
    for name, accuracy in (("ahead", 0.95), ("behind", 0.2)):
        monkeypatch.setattr(balance, "held_out_accuracy", lambda run, logits, a=accuracy: a)
        s = quiet_train(tiny_data, tmp_path / name, tiny(balance_target=0.7, **base))
        state = checkpoint.load_state(s["checkpoint"])
        scales[name] = state["progress"]["lr_d_scale"]
        assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * scales[name])
    assert scales["ahead"] < 0.7 and scales["behind"] == 1.0
    monkeypatch.undo()
    # the real measurement: D's accuracy on validation windows it never trained on, and on fresh fakes
    s = quiet_train(tiny_data, tmp_path / "real", tiny(balance_target=0.7, **base))
    state = checkpoint.load_state(s["checkpoint"])
    assert 0.0 <= state["progress"]["d_accuracy"] <= 1.0
    held_out = state["held_out"][0]  # one held-out batch of the validation windows per adversarial iteration
    assert held_out["pos"][0] > 0 and len(held_out["orders"][0]) == len(load_dataset(tiny_data).valid)


def test_guard_steps_aside_with_a_single_training_piece(tmp_path):
    from helpers import scale_piece, write_piece

    from gancomposer.dataset import PrepareOptions, prepare

    write_piece(tmp_path / "one.mid", scale_piece(bars=8))
    prepare([str(tmp_path / "one.mid")], tmp_path / "data", options=PrepareOptions(valid_fraction=0.0),
            progress=False, log=lambda s: None)
    lines = []
    s = train(tmp_path / "data", tmp_path / "run", tiny(pretrain_iters=2, adversarial_iters=3, guard_every=1),
              progress=False, log=lines.append)
    assert s["guard"] is None and s["iterations"] == 5
    assert any("quality guard needs at least 2 training pieces" in line for line in lines)


def test_train_says_where_the_default_model_came_from_and_what_fresh_pieces_saw():
    from gancomposer.cli import _guard_summary

    g = {"best_adversarial_iters": 75, "best_quality": 0.25, "pretrained_quality": 0.2, "gain": 0.05,
         "fresh": {"kept": "adversarial", "temperature": 0.95, "adversarial_quality": 0.24,
                   "pretrained_quality": 0.22}, "rollbacks": 1, "stopped_early": False, "temperature": 0.95}
    line = _guard_summary(g)
    assert "adversarial iteration 75" in line and "0.250 against 0.200 after pre-training (+0.050)" in line
    assert "the guard's best 0.240 against the pre-trained G's 0.220 (+0.020)" in line
    assert "temperature 0.95" in line and "ended early" not in line and "was kept" not in line
    old = _guard_summary({**g, "best_adversarial_iters": 0, "fresh": None, "stopped_early": True})
    assert "the end of pre-training" in old and "fresh" not in old and "phase ended early" in old
    assert "accuracy, at temperature 0.9) 0.250" in _guard_summary(
        {**g, "adversarial_temperature": 0.9})  # the temperature the phase drew G at, and the guard scored it
