"""Type aliases of the public API. Shapes are given in the docstrings, not here."""
from typing import Any, Callable, Protocol

from jax.typing import ArrayLike

PyTree = Any
"""Any nest of lists, tuples and dicts of arrays (``jax.tree`` handles it): params, batches."""

Batch = PyTree
"""What a loss reads, e.g. ``(x, y)`` or ``(x, y, weights)``; a task batch adds a leading axis."""

LossFn = Callable[[PyTree, Batch], ArrayLike]
"""``loss_fn(params, batch) -> scalar``."""

Objective = Callable[[PyTree, Batch, Batch], ArrayLike]
"""``objective(params, support, query) -> scalar``, over a batch of tasks."""

Mask = Any
"""Which parameters adapt in the inner loop: None (all), a pytree of bools with the params'
structure (or a prefix of it), or a predicate ``(key_path, leaf) -> bool``."""

SampleTasks = Callable[[Any], tuple[Batch, Batch]]
"""``sample_tasks(key) -> (support, query)``, batches with a leading task axis."""


class OnChunk(Protocol):
    """Called after each jitted chunk of training steps; return True to stop there."""

    def __call__(self, step: int, params: PyTree, opt_state: PyTree,
                 losses: Any) -> bool | None: ...


__all__ = ["ArrayLike", "Batch", "LossFn", "Mask", "Objective", "OnChunk", "PyTree", "SampleTasks"]
