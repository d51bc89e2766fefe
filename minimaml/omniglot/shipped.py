"""Conv-net parameters from a file: checked loading, and the θ shipped with minimaml.

A params file is a plain ``.npz`` written by :func:`minimaml.npz.save` (one array per
leaf, ``"0/w"`` is ``params[0]["w"]``; never pickle). A training checkpoint
(``checkpoint.npz`` of ``python -m minimaml.omniglot``) is read too: its ``params``.

:func:`load_params` infers the network's width and depth from the file, checks every
leaf against :func:`minimaml.nets.conv_init`'s layout, and checks the head against the
number of ways asked for; anything else is one ValueError naming the file and what was
expected.
"""
import pathlib

import jax
import numpy as np

from .. import npz
from ..checks import check_int
from ..nets import conv_init
from ..types import PyTree

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
# (ways, shots) -> file in minimaml/data; minimaml/data/README.md says how each was made.
SHIPPED = {(5, 1): "omniglot_5way1shot.npz"}
# chapter 6's transfer baseline: the conv net pretrained as one 1,200-way classifier
TRANSFER = "omniglot_transfer_1200way.npz"

_LAYOUT = ("the conv net of minimaml.nets.conv_init: blocks {w: (3, 3, C_in, F), "
           "scale: (F,), offset: (F,)} then a head {w: (F, N), b: (N,)}, as written by "
           "minimaml.npz.save")


def shipped_path(ways: int = 5, shots: int = 1) -> pathlib.Path:
    """The shipped θ's file for N-way K-shot; ValueError when none is shipped."""
    if (ways, shots) not in SHIPPED:
        have = ", ".join(f"{n}-way {k}-shot" for n, k in SHIPPED)
        raise ValueError(f"no shipped parameters for {ways}-way {shots}-shot (shipped: "
                         f"{have}); pass --params PATH")
    return DATA / SHIPPED[(ways, shots)]


def _layout(path: pathlib.Path, tree) -> tuple[int, int, int]:
    """(filters, blocks, classes) read off ``tree``'s layout, or ValueError."""
    ok = (isinstance(tree, list) and len(tree) >= 2 and all(isinstance(d, dict) for d in tree)
          and all(set(b) == {"w", "scale", "offset"} for b in tree[:-1])
          and set(tree[-1]) == {"w", "b"} and np.ndim(tree[0]["w"]) == 4
          and np.ndim(tree[-1]["w"]) == 2)
    if not ok:
        found = sorted(npz.flatten(tree))[:6] if isinstance(tree, (list, dict)) else []
        raise ValueError(f"{path}: holds no conv-net parameters (found {found}); expected "
                         f"{_LAYOUT}")
    return int(np.shape(tree[0]["w"])[-1]), len(tree) - 1, int(np.shape(tree[-1]["w"])[-1])


def load_params(path: str | pathlib.Path, ways: int | None = None) -> PyTree:
    """The conv net's parameters from ``path``, checked; ``ways`` (if given) must be the
    width of its head.

    Raises ValueError (one line, naming ``path``) for a missing file, a file that is not
    an ``.npz`` of plain arrays, other parameters or shapes than the conv net's, a head
    of another width than ``ways``, or non-finite values.
    """
    path = pathlib.Path(path)
    if ways is not None:
        check_int(ways, "ways", 2)
    try:
        tree, _ = npz.load(path)
    except ValueError as err:                       # missing, not an npz, pickled objects
        raise ValueError(f"{err}; expected a params .npz (minimaml.npz.save) or a "
                         f"training checkpoint.npz") from None
    if isinstance(tree, dict) and "params" in tree:   # a training checkpoint: its params
        tree = tree["params"]
    filters, blocks, classes = _layout(path, tree)
    loaded = _check_against(path, tree, conv_init(jax.random.key(0), classes,
                                                  filters=filters, blocks=blocks))
    if ways is not None and classes != ways:
        raise ValueError(f"{path}: its head has {classes} outputs (a {classes}-way "
                         f"classifier); {ways}-way tasks need a head of {ways}")
    if not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(loaded)):
        raise ValueError(f"{path}: holds non-finite values (NaN or inf): a diverged run?")
    return loaded


def _check_against(path, tree, like):
    """``tree`` cast to ``like``'s dtypes, once every leaf is there with its shape."""
    got, want = npz.flatten(tree), npz.flatten(like)
    if set(got) != set(want):
        raise ValueError(f"{path}: holds other parameters than expected (missing: "
                         f"{sorted(set(want) - set(got))[:4] or 'none'}, unexpected: "
                         f"{sorted(set(got) - set(want))[:4] or 'none'}); expected {_LAYOUT}")
    for name, leaf in want.items():
        if got[name].shape != leaf.shape:
            raise ValueError(f"{path}: parameter {name} has shape {got[name].shape}; "
                             f"expected {leaf.shape} ({_LAYOUT})")
    return jax.tree.map(lambda t, l: np.asarray(t, dtype=np.asarray(l).dtype), tree, like)


def shipped_params(ways: int = 5, shots: int = 1) -> PyTree:
    """The θ shipped in ``minimaml/data`` for N-way K-shot (see its README.md)."""
    return load_params(shipped_path(ways, shots), ways)


def shipped_transfer() -> tuple[PyTree, dict[str, np.ndarray]]:
    """The transfer baseline's pretrained 1,200-way net shipped in ``minimaml/data``
    (made by ``scripts/make_transfer_baseline.py``), checked, and how it was made:
    ``steps``, ``seed``, ``wall_seconds``, ``cpu_seconds``, ``losses``."""
    path = DATA / TRANSFER
    params = load_params(path)
    _, extra = npz.load(path)
    return params, extra
