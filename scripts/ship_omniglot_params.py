"""Write a training run's θ as a shipped params file (``minimaml/data/omniglot_*.npz``).

    python scripts/ship_omniglot_params.py CHECKPOINT OUT.npz [--ways 5]

CHECKPOINT is a ``checkpoint.npz`` of ``python -m minimaml.omniglot``: today's format
(``minimaml.npz.save`` of ``{"params": ..., "opt_state": ...}``) or the earlier one
(``param_0 .. param_N``: the leaves of ``conv_init(key, ways)`` in ``jax.tree.leaves``
order, plus ``opt_*``, ``step`` and ``state``). OUT gets the params only, in the format
of :func:`minimaml.npz.save` (no optimizer state), with the checkpoint's step as the
extra array ``_meta_steps``; it is then read back with
:func:`minimaml.omniglot.shipped.load_params` and compared leaf by leaf.
"""
import argparse
import pathlib
import sys

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minimaml import npz  # noqa: E402
from minimaml.nets import conv_init  # noqa: E402
from minimaml.omniglot.shipped import load_params  # noqa: E402


def read_checkpoint(path: pathlib.Path, ways: int) -> tuple[list, int]:
    """(params, step) from either checkpoint format."""
    with np.load(path, allow_pickle=False) as data:
        names = set(data.files)
        if "param_0" in names:                      # the earlier format
            template = conv_init(jax.random.key(0), ways)
            leaves, treedef = jax.tree.flatten(template)
            found = sorted(n for n in names if n.startswith("param_"))
            if len(found) != len(leaves):
                raise ValueError(f"{path}: {len(found)} param_* arrays; conv_init(key, {ways}) "
                                 f"has {len(leaves)} leaves")
            arrays = [np.asarray(data[f"param_{i}"]) for i in range(len(leaves))]
            for i, (a, want) in enumerate(zip(arrays, leaves)):
                if a.shape != want.shape:
                    raise ValueError(f"{path}: param_{i} has shape {a.shape}; expected "
                                     f"{want.shape}")
            return jax.tree.unflatten(treedef, arrays), int(data["step"])
    tree, extra = npz.load(path)
    return tree["params"], int(extra["step"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=pathlib.Path)
    p.add_argument("out", type=pathlib.Path)
    p.add_argument("--ways", type=int, default=5)
    args = p.parse_args(argv)
    params, step = read_checkpoint(args.checkpoint, args.ways)
    npz.save(args.out, params, meta_steps=np.array(step))
    back = load_params(args.out, args.ways)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back)):
        np.testing.assert_array_equal(a, b)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes): the params of "
          f"{args.checkpoint} at step {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
