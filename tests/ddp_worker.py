"""Run under torchrun by test_distributed.py: train, then write this rank's weights for comparison."""

import sys

from safetensors.torch import save_file

from gancomposer import distributed
from gancomposer.config import resolve
from gancomposer.run import start
from gancomposer.train import run_phases

data, run, out, *extra = sys.argv[1:]
cfg = resolve("tiny", None, ["pretrain_iters=3", "adversarial_iters=4", "checkpoint_every=5", "eval_every=5",
                             "batch_size=8", "mle_weight=1.0", "feature_matching=0.5", *extra])
state = start(data, run, cfg, progress=False, log=lambda s: None)  # train() without its summary ...
run_phases(state)
for name, net in (("generator", state.G), ("discriminator", state.D)):  # ... to read each rank's own weights
    weights = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(weights, f"{out}/{name}-rank{state.world.rank}.safetensors")
state.monitor.close()
distributed.leave(state.world)
