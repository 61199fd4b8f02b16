"""Run under torchrun by test_distributed.py: train, then write this rank's weights for comparison."""

import sys

import torch.distributed as dist
from safetensors.torch import save_file

from gancomposer.config import resolve
from gancomposer.train import train

data, run, out = sys.argv[1:4]
cfg = resolve("tiny", None, ["pretrain_steps=3", "steps=4", "checkpoint_every=5", "eval_every=5", "batch_size=8",
                             "mle_weight=1.0", "feature_matching=0.5"])
summary = train(data, run, cfg, progress=False, log=lambda s: None)
rank = dist.get_rank()
for name in ("generator", "discriminator"):
    state = {k: v.contiguous() for k, v in summary[name].state_dict().items()}
    save_file(state, f"{out}/{name}-rank{rank}.safetensors")
dist.destroy_process_group()
