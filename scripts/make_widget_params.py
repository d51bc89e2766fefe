"""Make the θ files the chapter widgets load (minimaml/data/, see its README.md).

- ``sinusoid_maml_snapshots.npz``: θ at meta-steps 0, 100, 300, 1k, 3k, 10k and 70k of
  the paper-config sinusoid MAML run (``sinusoid.Config()``, seed 0: the same run as
  ``sinusoid_maml.npz``, whose θ the last snapshot must equal), for the chapter 3 scrubber;
- ``sinusoid_fomaml.npz``: θ after the same run with ``first_order=True`` (chapter 5).

    python scripts/make_widget_params.py --out minimaml/data
"""
import argparse
import pathlib
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from minimaml import npz, sinusoid  # noqa: E402
from minimaml.train import meta_train  # noqa: E402

SNAPSHOT_STEPS = (0, 100, 300, 1_000, 3_000, 10_000, 70_000)


def run(config: sinusoid.Config, keep: tuple[int, ...]) -> dict[int, object]:
    """Meta-train as ``sinusoid.train`` does (same keys); θ at each step in ``keep``."""
    init_key, maml_key, _ = jax.random.split(jax.random.key(config.seed), 3)
    params0 = sinusoid.init_params(init_key, config.hidden)
    sampler = sinusoid.task_sampler(config.meta_batch, config.support_size, config.query_size)
    kept = {0: params0} if 0 in keep else {}

    def on_chunk(step, params, opt_state, losses):
        if step in keep:
            kept[step] = jax.device_get(params)
    meta_train(params0, sinusoid.sine_loss, sampler, maml_key, meta_steps=config.meta_steps,
               inner_lr=config.inner_lr, inner_steps=config.inner_steps,
               first_order=config.first_order, meta_lr=config.meta_lr, steps_per_call=100,
               on_chunk=on_chunk)
    return kept


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="minimaml/data")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)

    start = time.perf_counter()
    snapshots = run(sinusoid.Config(), SNAPSHOT_STEPS)
    shipped = sinusoid.load_params(out / "sinusoid_maml.npz")
    same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(snapshots[70_000]),
                                                    jax.tree.leaves(shipped)))
    print(f"second order: {time.perf_counter() - start:.0f} s; the 70k snapshot "
          f"{'equals' if same else 'DIFFERS from'} sinusoid_maml.npz")
    npz.save(out / "sinusoid_maml_snapshots.npz",
             {f"step{step}": snapshots[step] for step in SNAPSHOT_STEPS},
             steps=np.array(SNAPSHOT_STEPS))

    start = time.perf_counter()
    first_order = run(sinusoid.Config(first_order=True), (70_000,))[70_000]
    print(f"first order: {time.perf_counter() - start:.0f} s")
    sinusoid.save_params(out / "sinusoid_fomaml.npz", first_order)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
