"""Pretrain chapter 6's transfer baseline and ship it (``minimaml/data/``, see its README.md).

The conv net 4 × 64 with a 1,200-way head, trained with
:func:`minimaml.omniglot.baselines.pretrain_classifier` on the 1,200 meta-training
characters (the split of ``og.paper_config(5, 1)``) as one classification problem;
chapter 6 loads it instead of spending this CPU time in every execution.

    python scripts/make_transfer_baseline.py [--data DIR] [--steps 8000] [--seed 0] \
        [--out minimaml/data/omniglot_transfer_1200way.npz]

The file holds the params (``minimaml.npz`` format) and, as extra arrays, ``_steps``,
``_seed``, ``_wall_seconds``, ``_cpu_seconds`` and ``_losses`` (the loss of every step).
The key is chapter 6's: ``jax.random.key(seed + 3)``.
"""
import argparse
import os
import pathlib
import sys
import time

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minimaml import npz  # noqa: E402
from minimaml import omniglot as og  # noqa: E402
from minimaml.omniglot import baselines  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None)
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=pathlib.Path,
                   default=ROOT / "minimaml" / "data" / "omniglot_transfer_1200way.npz")
    args = p.parse_args(argv)
    data = og.load(args.data, progress=False)
    train_images, _ = og.split_images(data, og.paper_config(5, 1))
    load_before = " ".join(f"{v:.1f}" for v in os.getloadavg())
    wall, cpu = time.perf_counter(), time.process_time()
    params, losses = baselines.pretrain_classifier(
        train_images, jax.random.key(args.seed + 3), steps=args.steps, filters=64)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    load_after = " ".join(f"{v:.1f}" for v in os.getloadavg())
    npz.save(args.out, params, steps=np.array(args.steps), seed=np.array(args.seed),
             wall_seconds=np.array(wall), cpu_seconds=np.array(cpu),
             losses=np.asarray(losses, np.float32))
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes): {args.steps} steps in "
          f"{wall:.0f} s wall, {cpu:.0f} s process CPU (load average {load_before} -> "
          f"{load_after}); cross-entropy {np.mean(losses[:50]):.2f} -> "
          f"{np.mean(losses[-50:]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
