"""Run under torchrun by test_distributed.py and test_cuda.py: train, then write this rank's weights (and
the process group's backend) for comparison. :func:`launch` starts it under torchrun; :func:`train_alone`
trains the same way without torchrun."""

import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from gancomposer import distributed
from gancomposer.config import Config, resolve
from gancomposer.run import start
from gancomposer.train import run_phases


def settings(extra: list[str]) -> Config:
    return resolve("tiny", None, ["pretrain_iters=3", "adversarial_iters=4", "checkpoint_every=5", "eval_every=5",
                                  "batch_size=8", "mle_weight=1.0", "feature_matching=0.5", *extra])


def trained(data: str | Path, run: str | Path, extra: list[str]):
    """The run's state after training (train() without its summary, to read each rank's own weights)."""
    state = start(data, run, settings(extra), progress=False, log=lambda s: None)
    run_phases(state)
    state.monitor.close()
    return state


def weights(state) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {k: v.detach().contiguous() for k, v in net.state_dict().items()}
            for name, net in (("generator", state.G), ("discriminator", state.D))}


def launch(nproc: int, data: str | Path, tmp: Path, extra: list[str], scores_by_rank: bool = False) -> Path:
    """Train under ``torchrun --standalone`` with ``nproc`` processes, the run in ``tmp/run``; returns the folder
    ``tmp/weights`` where each rank wrote its weights. ``scores_by_rank``: the quality guard's score rises with
    the adversarial iterations on rank 0 and falls on the others (as if their scores came out otherwise)."""
    out = tmp / "weights"
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           __file__, str(data), str(tmp / "run"), str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCORES_BY_RANK": str(int(scores_by_rank))}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def train_alone(data: str | Path, run: str | Path, extra: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """The same training in this process, outside any process group."""
    return weights(trained(data, run, extra))


def rank_dependent_score(run, sampler=None, temperature=1.0, stream="guard", index=0) -> dict:
    q = (1 if run.world.rank == 0 else -1) * 0.01 * run.progress.adversarial_iters
    return {"quality": q, "overlap_area": q, "two_sample_accuracy": 0.0, "frechet_distance": 1.0}


if __name__ == "__main__":
    data, run, out, *extra = sys.argv[1:]
    if os.environ.get("SCORES_BY_RANK") == "1":
        from gancomposer import guard

        guard.score = rank_dependent_score
    state = trained(data, run, extra)
    for name, tensors in weights(state).items():
        save_file({k: v.cpu() for k, v in tensors.items()}, f"{out}/{name}-rank{state.world.rank}.safetensors")
    Path(f"{out}/backend-rank{state.world.rank}.txt").write_text(str(dist.get_backend()))
    distributed.leave(state.world)
