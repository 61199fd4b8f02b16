"""Two processes under torchrun (gloo on the CPU) train together and end with equal weights."""

import ddp_worker
import pytest
import torch
from safetensors.torch import load_file


# adversarial_ratio: G's gradients are taken apart and averaged over the processes by hand, not by DDP
@pytest.mark.parametrize("extra", [[], ["adversarial_ratio=1.0"]])
def test_two_process_torchrun_keeps_ranks_in_sync(tiny_data, tmp_path, extra):
    out = ddp_worker.launch(2, tiny_data, tmp_path, extra)
    for name in ("generator", "discriminator"):
        a = load_file(out / f"{name}-rank0.safetensors")
        b = load_file(out / f"{name}-rank1.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # training moved G away from its initial weights, so the equality is not trivial
    from gancomposer.config import resolve
    from gancomposer.dataset import load_dataset
    from gancomposer.model import build_models

    cfg = resolve("tiny")
    torch.manual_seed(cfg.train.seed)
    ds = load_dataset(tiny_data)
    fresh, _ = build_models(cfg.model, ds.encoding, ds.conditions)
    trained = load_file(out / "generator-rank0.safetensors")
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())
    ckpts = sorted((tmp_path / "run" / "checkpoints").glob("step-*.safetensors"))
    assert ckpts and ckpts[-1].name == "step-000007.safetensors"  # only rank 0 wrote, at the end
    assert not list((tmp_path / "run").glob("checkpoints/unused*"))


def test_the_quality_guard_decides_on_rank_0s_scores_on_every_process(tiny_data, tmp_path):
    """Scores computed apart could differ; rolled back on one process and not on another, the weights would part
    for good. Here rank 1's own scores fall (it would roll back) while rank 0's rise: both keep going as rank 0."""
    out = ddp_worker.launch(2, tiny_data, tmp_path, ["guard_every=1", "guard_patience=1", "tune_temperature=false"],
                            scores_by_rank=True)
    for name in ("generator", "discriminator"):
        a, b = (load_file(out / f"{name}-rank{r}.safetensors") for r in (0, 1))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    from gancomposer.checkpoint import load

    guard_row = load(tmp_path / "run" / "checkpoints" / "best.safetensors")[1]["guard"]
    assert guard_row["adversarial_iters"] == 4 and guard_row["quality"] > 0  # rank 0's: kept to the end


def test_one_process_under_torchrun_joins_a_group_and_trains_exactly_as_without_it(tiny_data, tmp_path):
    out = ddp_worker.launch(1, tiny_data, tmp_path, ["device=cpu", "threads=1"])
    assert (out / "backend-rank0.txt").read_text() == "gloo"  # the distributed path ran, with a group of one
    threads = torch.get_num_threads()
    try:
        alone = ddp_worker.train_alone(tiny_data, tmp_path / "alone", ["device=cpu", "threads=1"])
    finally:
        torch.set_num_threads(threads)
    for name in ("generator", "discriminator"):
        grouped = load_file(out / f"{name}-rank0.safetensors")
        assert grouped.keys() == alone[name].keys()
        assert all(torch.equal(grouped[k], alone[name][k]) for k in grouped), name
