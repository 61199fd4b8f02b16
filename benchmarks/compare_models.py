"""Benchmark: two composing models side by side, set by set.

Each model (a run folder, a checkpoint or an exported file) composes ``--sets`` sets of 96 pieces × 8 bars at its
own temperature and key guidance (what a user of it gets), set k of both with sampling seed 1234 + k, and each set
is evaluated as ``gancomposer evaluate`` does against DATA. Prints each model's mean and the paired difference
B − A (mean ± standard error over the sets) and in how many sets B is the better: one set's numbers move by about
as much from seed to seed as two good models differ, and pairing the sets takes that part out.

    python benchmarks/compare_models.py A B DATA [--sets 24] [--out scores.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from adversarial_gain import HEADLINE, score  # sibling scripts: 96 pieces × 8 bars of a checkpoint, evaluated;
from temperature_sweep import FIRST_SEED, mean_and_error  # the paired sets' seeds and their mean ± error

from gancomposer.compose import Composer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("data")
    ap.add_argument("--sets", type=int, default=24)
    ap.add_argument("--out", default=None, help="JSON file for every set's scores")
    args = ap.parse_args()
    models = {"A": args.a, "B": args.b}
    temperature = {}
    for name, path in models.items():
        composer = Composer.load(path)
        temperature[name] = composer.temperature
        print(f"{name}: {path} at temperature {composer.temperature}, key guidance {composer.generator.key_guidance}")
    rows = {name: [score(path, args.data, seed=FIRST_SEED + k, temperature=temperature[name])
                   for k in range(args.sets)] for name, path in models.items()}
    for h in HEADLINE:
        d = [rows["B"][k][h] - rows["A"][k][h] for k in range(args.sets)]
        difference, error = mean_and_error(d)
        better = sum(x > 0 if h == "overlap_area" else x < 0 for x in d)
        mean = {name: statistics.fmean(r[h] for r in rows[name]) for name in models}
        print(f"{h}: A {mean['A']:.3f}, B {mean['B']:.3f}, B - A {difference:+.3f} ± {error:.3f}; "
              f"B better in {better} of {args.sets} sets")
    if args.out:
        Path(args.out).write_text(json.dumps({"models": models, "temperature": temperature, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
