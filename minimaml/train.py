"""Meta-training with optax: many jitted steps per call, task sampling inside.

One routine, :func:`optimize`, fits any ``objective(params, support, query)`` on task
batches drawn from ``sample_tasks(key)``. The recipes are compositions of it:

- :func:`meta_train` — MAML / first-order MAML: the objective is ``maml_objective``.
- :func:`pretrain` — the paper's "pretrained" baseline: plain regression on tasks
  drawn from p(T) (``query_loss``, no adaptation inside the objective).

Nothing here prints: progress bars and messages belong to the caller, through
``on_chunk`` (see :mod:`minimaml.progress`).
"""
import dataclasses
from functools import partial
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .checks import check_adapt, check_int, check_positive
from .devices import (Devices, TaskShares, process_zero_decides, replicate, replicated,
                      shard_tasks, task_sharding)
from .maml import maml_objective, query_loss
from .types import ArrayLike, LossFn, Mask, Objective, OnChunk, PyTree, SampleTasks


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; ``step`` and ``loss`` say where."""

    def __init__(self, step: int, loss: float, message: str | None = None):
        self.step, self.loss = step, loss
        super().__init__(message or f"training diverged: the loss became {loss} at step {step}")


# Adam without its learning rate: the rate is applied in the step as a traced value, so
# the compiled chunk is the same for any β and two training calls share one compilation.
_ADAM = optax.scale_by_adam()


def default_opt_state(params: PyTree) -> PyTree:
    """The state :func:`optimize`'s default Adam starts from (a template for checkpoints)."""
    return _ADAM.init(params)


def _as_pytree(fn: Any) -> Any:
    """A callable as a jit argument: a registered pytree as it is (its arrays traced),
    any other callable wrapped as a leafless ``Partial`` (itself static)."""
    leaves = jax.tree.leaves(fn)
    return jax.tree_util.Partial(fn) if len(leaves) == 1 and leaves[0] is fn else fn


@partial(jax.jit, static_argnames=("length", "sharding"))
def _run_chunk(params, opt_state, lr, key, first_step, objective, sample_tasks, update, *,
               length, sharding=None):
    def one_step(carry, step):
        params, opt_state = carry
        support, query = sample_tasks(jax.random.fold_in(key, step))
        if sharding is not None:
            support, query = shard_tasks((support, query), sharding)
        loss, grads = jax.value_and_grad(objective)(params, support, query)
        updates, opt_state = update(grads, opt_state, params)
        if lr is not None and jax.tree.structure(lr).num_leaves > 1:    # a rate per leaf
            updates = jax.tree.map(lambda u, rate: -rate * u, updates, lr)
        elif lr is not None:
            updates = jax.tree.map(lambda u: -lr * u, updates)
        return (optax.apply_updates(params, updates), opt_state), loss

    step_numbers = first_step + jnp.arange(length)
    (params, opt_state), losses = jax.lax.scan(one_step, (params, opt_state), step_numbers)
    if sharding is not None:    # every process can read them whole
        params, opt_state, losses = jax.lax.with_sharding_constraint(
            (params, opt_state, losses), replicated(sharding))
    return params, opt_state, losses


def optimize(params: PyTree, objective: Objective, sample_tasks: SampleTasks, key: jax.Array,
             *, steps: int, lr: float | PyTree | None = 1e-3,
             optimizer: optax.GradientTransformation | None = None,
             steps_per_call: int = 1000, opt_state: PyTree | None = None, start_step: int = 0,
             on_chunk: OnChunk | None = None,
             devices: Devices = None) -> tuple[PyTree, PyTree, np.ndarray]:
    """Minimise ``objective`` over freshly sampled task batches with an optax optimizer.

    Each step draws a task batch with ``sample_tasks(fold_in(key, step))`` — so the
    tasks of step n do not depend on how the steps are split into calls — takes
    ``jax.value_and_grad(objective)`` and applies one optimizer update. Chunks of
    ``steps_per_call`` steps run inside one jitted ``lax.scan``, so Python overhead is
    paid once per chunk, not once per step. The chunk is jitted once for the module:
    ``objective`` and ``sample_tasks`` are passed to it as pytrees, so a second call
    with equal ones (e.g. the same loss, sizes and α) reuses the compilation.

    Args:
      params: initial parameter pytree.
      objective: ``objective(params, support, query) -> scalar``.
      sample_tasks: ``sample_tasks(key) -> (support, query)``, batches with a
        leading task axis.
      key: a ``jax.random`` key.
      steps: total number of optimizer steps to reach (counting from 0).
      lr: learning rate of the default Adam (β in the paper): a number, or a pytree
        with the params' structure (one rate per leaf, e.g. a smaller one for learned
        inner rates, :func:`minimaml.family.mamlpp`).
      optimizer: an ``optax.GradientTransformation`` (with its own learning rate) to
        use instead of Adam; then ``lr`` must be None.
      opt_state, start_step: resume from a saved state: run steps
        ``start_step .. steps-1`` only.
      on_chunk: called as ``on_chunk(step, params, opt_state, losses)`` after each
        chunk, ``step`` being the number of steps done so far (for checkpoints, logs,
        progress bars); returning True stops training there (with several processes,
        process 0's answer stops them all).
      devices: split the task axis of every meta-batch across devices
        (:mod:`minimaml.devices`): a count n (the first n devices), a list of devices
        or a ``Mesh`` with a ``"tasks"`` axis. Params and optimizer state are
        replicated; each device adapts its share of the tasks and XLA all-reduces the
        meta-gradient. A meta-batch that does not divide by the device count is padded
        by XLA with the padding masked out, so the mean is exact. None: a single
        process runs as without this argument (so does a mesh of one device); after
        :func:`minimaml.devices.initialize_distributed`, every device of every process,
        ``sample_tasks`` then drawing one process's share (see ``TaskShares``).

    Returns:
      ``(params, opt_state, losses)``, losses a float numpy array of the objective at
      each step run, in order.

    Raises:
      TrainingDiverged: the objective became NaN/inf (``.step`` says where).
    """
    check_int(steps, "steps", 1)
    check_int(steps_per_call, "steps_per_call", 1)
    check_int(start_step, "start_step", 0)
    if optimizer is None:
        for rate in jax.tree.leaves(lr) or [lr]:
            check_positive(rate, "lr")
    elif lr is not None:
        raise ValueError(f"lr must be None when an optimizer is given (it has its own rate); "
                         f"got lr={lr!r}")
    sharding = task_sharding(devices)
    return _optimize(params, objective, sample_tasks, key, steps, lr, optimizer,
                     steps_per_call, opt_state, start_step, on_chunk, sharding)


def _optimize(params, objective, sample_tasks, key, steps, lr, optimizer, steps_per_call,
              opt_state, start_step, on_chunk, sharding=None):
    if optimizer is None:
        optimizer, lr = _ADAM, jax.tree.map(jnp.asarray, lr)
    if opt_state is None:
        opt_state = optimizer.init(params)
    objective, sample_tasks = _as_pytree(objective), _as_pytree(sample_tasks)
    update = jax.tree_util.Partial(optimizer.update)
    if sharding is not None:
        if jax.process_count() > 1:    # each process draws its share: fold_in(key, process)
            sample_tasks = TaskShares(sample_tasks, jax.process_count())
        params, opt_state, lr, key, objective, sample_tasks = replicate(
            (params, opt_state, lr, key, objective, sample_tasks), sharding)
    all_losses = []
    step = start_step
    while step < steps:
        length = min(steps_per_call, steps - step)
        params, opt_state, losses = _run_chunk(params, opt_state, lr, key, step, objective,
                                               sample_tasks, update, length=length,
                                               sharding=sharding)
        losses = np.asarray(losses)
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            raise TrainingDiverged(step + int(bad[0]), float(losses[bad[0]]))
        all_losses.append(losses)
        step += length
        stop = on_chunk is not None and bool(on_chunk(step, params, opt_state, losses))
        if sharding is not None and jax.process_count() > 1:
            stop = process_zero_decides(stop)      # all processes stop at the same chunk
        if stop:
            break
    losses = np.concatenate(all_losses) if all_losses else np.zeros((0,), np.float32)
    return params, opt_state, losses


def optimize_schedule(params: PyTree, schedule: Sequence[tuple[int, Objective]],
                      sample_tasks: SampleTasks, key: jax.Array, *, start_step: int = 0,
                      opt_state: PyTree | None = None, on_chunk: OnChunk | None = None,
                      **optimize_kwargs: Any) -> tuple[PyTree, PyTree, np.ndarray]:
    """:func:`optimize` with an objective that changes at given steps.

    ``schedule`` is a sequence of ``(until_step, objective)`` with increasing
    ``until_step``: objective i trains steps ``until_{i-1} .. until_i − 1`` (from 0),
    and the last ``until_step`` is the total. Each phase is an :func:`optimize` call
    that resumes the optimizer state of the one before, so a schedule gives exactly
    the run that switching objectives at those steps inside one loop would: the tasks
    of step n are drawn from ``fold_in(key, n)`` either way. Each distinct objective
    compiles once (objectives that differ only in their arrays share a compilation),
    and each compiled chunk runs one objective with no switch inside it — e.g. MAML++'s
    derivative-order annealing, first order then second order
    (:func:`minimaml.family.mamlpp`). Other keyword arguments go to :func:`optimize`.
    Returns ``(params, opt_state, losses)``, losses over all steps run.
    """
    ends = [check_int(until, "schedule's until_step", 1) for until, _ in schedule]
    if not ends or any(b <= a for a, b in zip(ends, ends[1:])):
        raise ValueError(f"schedule must be a non-empty sequence of (until_step, objective) "
                         f"with increasing until_step; got steps {ends}")
    check_int(start_step, "start_step", 0)
    all_losses = []
    step, stopped = start_step, False

    def watch(*args):
        nonlocal stopped
        stopped = bool(on_chunk(*args)) if on_chunk is not None else False
        return stopped

    for until, objective in schedule:
        if until <= step:
            continue
        params, opt_state, losses = optimize(params, objective, sample_tasks, key, steps=until,
                                             start_step=step, opt_state=opt_state,
                                             on_chunk=watch, **optimize_kwargs)
        all_losses.append(losses)
        step += len(losses)
        if stopped:
            break
    if opt_state is None:
        raise ValueError(f"start_step={start_step} is at or past the schedule's last step "
                         f"{ends[-1]}: nothing to train")
    return params, opt_state, np.concatenate(all_losses)


@partial(jax.tree_util.register_dataclass, data_fields=[],
         meta_fields=["loss_fn", "inner_lr", "inner_steps", "first_order", "remat", "adapt"])
@dataclasses.dataclass(frozen=True)
class MamlObjective:
    """``maml_objective`` with its settings fixed: ``objective(params, support, query)``.

    A pytree with no arrays: all settings are static, α included — a traced α changes
    XLA's second-order arithmetic in the last bits, and training results stay bitwise
    what a constant α gives. Equal objectives share one compilation. ``adapt``: one
    bool per leaf of the params (see :func:`minimaml.checks.check_adapt`), or None.
    """
    loss_fn: LossFn
    inner_lr: ArrayLike
    inner_steps: int = 1
    first_order: bool = False
    remat: bool = False
    adapt: tuple[bool, ...] | None = None

    def __call__(self, params, support, query):
        adapt = None if self.adapt is None else jax.tree.unflatten(jax.tree.structure(params),
                                                                   self.adapt)
        return maml_objective(params, self.loss_fn, support, query, self.inner_lr,
                              self.inner_steps, first_order=self.first_order, remat=self.remat,
                              adapt=adapt)


@partial(jax.tree_util.register_dataclass, data_fields=[], meta_fields=["loss_fn"])
@dataclasses.dataclass(frozen=True)
class PlainObjective:
    """``query_loss`` with its loss fixed: the pretrained baseline's objective."""
    loss_fn: LossFn

    def __call__(self, params, support, query):
        return query_loss(params, self.loss_fn, support, query)


def meta_train(params: PyTree, loss_fn: LossFn, sample_tasks: SampleTasks, key: jax.Array, *,
               meta_steps: int, inner_lr: float, inner_steps: int = 1,
               first_order: bool = False, meta_lr: float = 1e-3, remat: bool = False,
               adapt: Mask = None, **optimize_kwargs: Any) -> tuple[PyTree, PyTree, np.ndarray]:
    """MAML meta-training (second order unless ``first_order=True``) with Adam(meta_lr).

    Minimises ``maml_objective`` with ``inner_steps`` SGD steps of size ``inner_lr``
    (α) per task; ``meta_lr`` is β; ``adapt`` chooses the parameters that adapt in the
    inner loop (:func:`minimaml.maml.inner_loop`; ANIL adapts the head only). Other
    keyword arguments (``steps_per_call``, ``opt_state``, ``start_step``, ``on_chunk``,
    ``devices``) go to :func:`optimize`. Returns ``(params, opt_state, losses)``.
    """
    check_int(meta_steps, "meta_steps", 1)
    check_positive(inner_lr, "inner_lr")
    check_int(inner_steps, "inner_steps", 0)
    check_positive(meta_lr, "meta_lr")
    objective = MamlObjective(loss_fn, float(inner_lr), int(inner_steps),
                              bool(first_order), bool(remat), check_adapt(params, adapt))
    return optimize(params, objective, sample_tasks, key, steps=meta_steps, lr=meta_lr,
                    **optimize_kwargs)


def pretrain(params: PyTree, loss_fn: LossFn, sample_tasks: SampleTasks, key: jax.Array, *,
             steps: int, lr: float = 1e-3,
             **optimize_kwargs: Any) -> tuple[PyTree, PyTree, np.ndarray]:
    """The pretrained baseline: plain regression on task batches from p(T), Adam(lr).

    Uses the same task sampler, batch size and optimizer as MAML, but the objective
    is the loss at θ itself (``query_loss``): no inner loop. Other keyword arguments
    (``devices``, ``on_chunk``, ...) go to :func:`optimize`. Returns
    ``(params, opt_state, losses)``.
    """
    return optimize(params, PlainObjective(loss_fn), sample_tasks, key, steps=steps, lr=lr,
                    **optimize_kwargs)
