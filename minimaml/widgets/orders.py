"""Chapter 5's widget: the θ of first-order MAML and of MAML adapting the same task, side by side.

    from minimaml.widgets import first_vs_second_order
    first_vs_second_order()

Both θ were meta-trained with the paper's sinusoid config, 70,000 meta-steps; the
first-order run drops the second-derivative term (``first_order=True``). The panels
are the playground's (:class:`.sinusoid_playground.Playground`): the same K points, α and step
count for both.
"""
import importlib.resources

import jax
import jax.numpy as jnp

from ..checks import check_int, check_number
from ..sinusoid import load_params
from ..types import PyTree
from .sinusoid_playground import Playground
from .sinusoid_adaptation import INNER_LR_RANGE, MAX_SHOTS, MAX_STEPS, check_params

COLORS = {"second-order MAML": "#1f77b4", "first-order MAML": "#d62728"}


def load_first_order_params() -> PyTree:
    """θ of first-order MAML, paper sinusoid config (see ``minimaml/data/README.md``)."""
    data = importlib.resources.files("minimaml") / "data"
    with importlib.resources.as_file(data / "sinusoid_fomaml.npz") as path:
        return load_params(path)


def first_vs_second_order(second_order_params: PyTree | None = None,
                          first_order_params: PyTree | None = None, *, seed: int = 0,
                          shots: int = 10, inner_lr: float = 0.01,
                          steps: int = 1) -> Playground:
    """Two θ fine-tuning on the same sinusoid task, one panel each, and their query MSE.

    Args:
      second_order_params, first_order_params: MLP θ (``None``: the shipped ones).
      seed: picks the task sequence; shots, inner_lr, steps: the controls' start.
    """
    check_int(seed, "seed", 0, 2**31 - 1)
    check_int(shots, "shots (K)", 1, MAX_SHOTS)
    check_int(steps, "steps", 0, MAX_STEPS)
    inner_lr = check_number(inner_lr, "inner_lr (α)", *INNER_LR_RANGE)
    shipped = []
    if second_order_params is None:
        from .sinusoid_adaptation import load_shipped_params
        second_order_params = load_shipped_params()[0]
        shipped.append("second-order")
    if first_order_params is None:
        first_order_params = load_first_order_params()
        shipped.append("first-order")
    check_params(second_order_params, "second_order_params")
    check_params(first_order_params, "first_order_params")
    inits = {"second-order MAML": second_order_params, "first-order MAML": first_order_params}
    inits = {n: jax.tree.map(jnp.asarray, p) for n, p in inits.items()}
    caption = (f"<i>{' and '.join(shipped)} θ: the shipped paper-config runs "
               f"(minimaml/data/, 70,000 meta-steps each, K = 10, α = 0.01).</i>"
               if shipped else "")
    return Playground(inits, seed=seed, shots=shots, inner_lr=inner_lr, steps=steps,
                      colors=COLORS, split=True, name="orders", caption=caption)
