"""The Omniglot meta-test: fixed fresh tasks from the held-out characters, each
fine-tuned from θ (plain SGD at α, or a family member's own way) and scored."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import family
from ..devices import Devices
from ..evaluate import finetune_curves
from ..train import TrainingDiverged
from ..types import PyTree
from .model import GroupedAccuracy, classifier
from .sizes import eval_chunk
from .tasks import sample_tasks

if TYPE_CHECKING:
    from .experiment import Config


@dataclasses.dataclass(frozen=True)
class _FiniteAccuracy:
    """The grouped accuracy, NaN where fine-tuning made the weights non-finite (their
    argmax would otherwise still pick a class and score as chance)."""
    accuracy: GroupedAccuracy

    def __call__(self, params, query):
        leaves = jax.tree.leaves(params)
        finite = jnp.all(jnp.array([jnp.isfinite(leaf).all() for leaf in leaves]))
        return jnp.where(finite, self.accuracy(params, query), jnp.nan)


def evaluate(params: PyTree, test_images: jax.Array, config: Config,
             conv: Callable | None = None, max_diverged_fraction: float = 0.1,
             learned: family.Learned | None = None, devices: Devices = None) -> np.ndarray:
    """Meta-test: ``eval_tasks`` fixed fresh tasks, ``eval_inner_steps`` SGD steps at α
    (with ``learned``: fine-tuned its way — learned rates, ANIL's head only — from
    ``learned.params``, and ``params`` is not used).

    Returns per-task accuracy after 0..eval_inner_steps steps, (T, steps+1) numpy.
    The tasks are the same for every call with the same config (seeded apart from
    training), so checkpoints can be compared.

    A task whose fine-tuned weights become non-finite counts as wrong (accuracy 0 from
    that step on); if more than ``max_diverged_fraction`` of the tasks do, this raises
    TrainingDiverged. ``devices`` splits the tasks across devices.
    """
    return _evaluate(params, test_images, config, conv, max_diverged_fraction, learned,
                     devices)[0]


def _evaluate(params, test_images, config, conv, max_diverged_fraction=0.1, learned=None,
              devices=None):
    """(accuracies, the number of tasks whose fine-tuning diverged); see :func:`evaluate`."""
    key = jax.random.fold_in(jax.random.key(config.seed), 10_000)
    tasks = sample_tasks(key, test_images, config.eval_tasks, config.ways, config.shots,
                         config.eval_queries)
    apply_fn, loss_fn = classifier(conv)
    metric = _FiniteAccuracy(GroupedAccuracy(apply_fn, config.ways, config.queries))
    finetune = {"inner_lr": config.inner_lr} if learned is None else \
        learned.finetune_kwargs(config.eval_inner_steps)
    curves = finetune_curves(params if learned is None else learned.params, loss_fn,
                             tasks.support, tasks.query, steps=config.eval_inner_steps,
                             metric_fn=metric, task_chunk=eval_chunk(config), devices=devices,
                             **finetune)
    diverged = ~np.isfinite(curves)
    if diverged.any(axis=1).sum() > max_diverged_fraction * len(curves):
        step = int(np.argmax(diverged.any(axis=0)))
        raise TrainingDiverged(step, float("nan"),
            f"fine-tuning diverged at meta-test on {int(diverged.any(axis=1).sum())} of "
            f"{len(curves)} tasks, the weights becoming non-finite at step {step}; try a "
            f"smaller learning rate (inner_lr={config.inner_lr})")
    return np.where(diverged, 0.0, curves), int(diverged.any(axis=1).sum())
