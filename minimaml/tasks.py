"""What every benchmark's tasks share: support/query views and the sampler training wants.

A benchmark defines its task batch as a NamedTuple with ``support_x``, ``support_y``,
``query_x``, ``query_y`` fields (plus whatever else it records) and mixes in
:class:`SupportQuery`; its ``sample_tasks(key, *data, **sizes)`` draws one such batch.
:class:`TaskSampler` turns that into the ``key -> (support, query)`` function that
:func:`minimaml.train.optimize` consumes.
"""
import dataclasses
from functools import partial
from typing import Any, Callable

import jax

from .types import Batch


class SupportQuery:
    """Mixin for a task batch with support_x/support_y/query_x/query_y fields."""
    __slots__ = ()

    @property
    def support(self) -> Batch:
        return self.support_x, self.support_y

    @property
    def query(self) -> Batch:
        return self.query_x, self.query_y


@partial(jax.tree_util.register_dataclass, data_fields=["data"],
         meta_fields=["sample_tasks", "sizes"])
@dataclasses.dataclass(frozen=True)
class TaskSampler:
    """``sampler(key) -> (support, query)``: ``sample_tasks(key, *data, **sizes)``'s two sets.

    A pytree: ``data`` (e.g. the Omniglot image array) is passed to jitted training as
    an argument rather than baked into the program as a constant; ``sample_tasks`` and
    ``sizes`` are static, and two samplers with equal ones share a compilation.
    """
    sample_tasks: Callable[..., SupportQuery]
    sizes: tuple[tuple[str, Any], ...]
    data: tuple = ()

    def __call__(self, key: jax.Array) -> tuple[Batch, Batch]:
        tasks = self.sample_tasks(key, *self.data, **dict(self.sizes))
        return tasks.support, tasks.query


def task_sampler(sample_tasks: Callable[..., SupportQuery], *data: Any,
                 **sizes: Any) -> TaskSampler:
    """A :class:`TaskSampler` drawing ``sample_tasks(key, *data, **sizes)``."""
    return TaskSampler(sample_tasks, tuple(sorted(sizes.items())), tuple(data))
