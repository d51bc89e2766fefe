"""Meta-objectives of MAML's relatives, as pytrees :func:`minimaml.train.optimize` can jit.

Each is a registered dataclass: ``objective(trained, support, query) -> scalar`` over
a batch of tasks (leading task axis). Its settings are static (a change recompiles);
its arrays (given rates, multi-step weights) are traced, so objectives that differ
only in those share one compilation.

- :class:`InnerLoopObjective` — ``maml_objective`` with every knob of the inner loop:
  rates per tensor / entry / step, given or learned (:class:`LearnedRates`), the
  parameters that adapt, a multi-step query loss. Meta-SGD and MAML++ are settings of it.
- :class:`ReptileObjective` — Reptile's update as the gradient of a surrogate.

Plain MAML, FOMAML and ANIL use :class:`minimaml.train.MamlObjective` (a static α,
the bitwise-reproducible path); iMAML's objective is in :mod:`.imaml`.
"""
import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..maml import inner_loop, maml_objective
from ..types import ArrayLike, Batch, LossFn, PyTree


class LearnedRates(NamedTuple):
    """What meta-training trains when α is learned too (Meta-SGD, MAML++'s LSLR).

    params: θ. inner_lr: α, a pytree with θ's structure — leaves of θ's shapes
    (Meta-SGD: one rate per entry) or ``(inner_steps,)`` (LSLR: one rate per tensor and
    step). A NamedTuple, so Adam updates both with the same meta learning rate.
    """
    params: PyTree
    inner_lr: PyTree


def _unflatten_flags(params: PyTree, adapt: tuple[bool, ...] | None) -> PyTree | None:
    return None if adapt is None else jax.tree.unflatten(jax.tree.structure(params), adapt)


@partial(jax.tree_util.register_dataclass, data_fields=["inner_lr", "query_weights"],
         meta_fields=["loss_fn", "inner_steps", "first_order", "remat", "adapt",
                      "lr_per_step"])
@dataclasses.dataclass(frozen=True)
class InnerLoopObjective:
    """``maml_objective`` with all of the inner loop's knobs; ``objective(trained, s, q)``.

    inner_lr: α as :func:`minimaml.maml.inner_loop` takes it (traced here), or None:
      α is learned, and ``trained`` is a :class:`LearnedRates` ``(θ, α)``.
    query_weights: ``(inner_steps,)`` weights of the query loss after each inner step
      (MAML++'s multi-step loss), or None (the last step only).
    adapt: one bool per leaf of θ (:func:`minimaml.checks.check_adapt`), or None.
    lr_per_step: α has a leading axis of length ``inner_steps``.
    """
    loss_fn: LossFn
    inner_steps: int = 1
    inner_lr: PyTree | None = None
    query_weights: ArrayLike | None = None
    first_order: bool = False
    remat: bool = False
    adapt: tuple[bool, ...] | None = None
    lr_per_step: bool = False

    def __call__(self, trained: PyTree, support: Batch, query: Batch) -> jax.Array:
        params, inner_lr = trained if self.inner_lr is None else (trained, self.inner_lr)
        return maml_objective(params, self.loss_fn, support, query, inner_lr, self.inner_steps,
                              first_order=self.first_order, remat=self.remat,
                              adapt=_unflatten_flags(params, self.adapt),
                              lr_per_step=self.lr_per_step, query_weights=self.query_weights)


def _concatenate(support: Batch, query: Batch) -> Batch:
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), support, query)


@partial(jax.tree_util.register_dataclass, data_fields=[],
         meta_fields=["loss_fn", "inner_lr", "inner_steps"])
@dataclasses.dataclass(frozen=True)
class ReptileObjective:
    """Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning
    Algorithms", Algorithm 2, batched version): θ ← θ + ε · mean_i (φ_i − θ), where φ_i
    is θ after ``inner_steps`` SGD steps of size α on task i.

    As an objective: the mean over tasks of ½‖θ − sg(φ_i)‖², whose gradient is
    exactly mean_i (θ − φ_i), so the same optax loop trains it (with Adam as the outer
    optimiser by default; ``optimizer=optax.sgd(ε)`` gives the paper's plain update).
    Reptile has no query set: the inner steps use all of the task's data, support and
    query together, one full batch per step (the paper samples minibatches).
    Nothing is differentiated through the inner loop.
    """
    loss_fn: LossFn
    inner_lr: float
    inner_steps: int = 5

    def __call__(self, params: PyTree, support: Batch, query: Batch) -> jax.Array:
        def one_task(task_support, task_query):
            data = _concatenate(task_support, task_query)
            phi = inner_loop(params, self.loss_fn, data, self.inner_lr, self.inner_steps,
                             first_order=True)
            phi = jax.lax.stop_gradient(phi)
            return 0.5 * sum(jnp.sum((p - f) ** 2)
                             for p, f in zip(jax.tree.leaves(params), jax.tree.leaves(phi)))
        return jnp.mean(jax.vmap(one_task)(support, query))
