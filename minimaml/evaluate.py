"""The meta-test protocol: fresh tasks, a fixed fine-tuning budget, mean ± 95% CI.

Separate from training: the tasks here were never seen by the meta-learner, each is
fine-tuned from the same θ with plain SGD on its K support points (the same points
at every step), and the loss is measured on that task's held-out query points.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .checks import check_adapt, check_inner_lr, check_int
from .devices import TASK_AXIS, Devices, replicate, replicated, shard_tasks, task_sharding
from .maml import _inner_loop
from .types import ArrayLike, Batch, LossFn, Mask, PyTree


@partial(jax.jit, static_argnames=("loss_fn", "metric_fn", "steps", "task_chunk", "adapt",
                                   "lr_per_step", "sharding"))
def _curves(params, inner_lr, support, query, *, loss_fn, metric_fn, steps, task_chunk,
            adapt=None, lr_per_step=False, sharding=None):
    def one_task(task):
        task_support, task_query = task
        _, traj = _inner_loop(params, loss_fn, task_support, inner_lr, steps, trajectory=True,
                              adapt=adapt, lr_per_step=lr_per_step)
        return jax.vmap(metric_fn, in_axes=(0, None))(traj.params, task_query)

    def all_tasks(tasks):
        if task_chunk:
            return jax.lax.map(one_task, tasks, batch_size=task_chunk)
        return jax.vmap(one_task)(tasks)

    if sharding is None:
        return all_tasks((support, query))
    # (devices, tasks per device, ...): each device runs its own tasks (task_chunk at a
    # time), and the curves come back whole to every device.
    shards = sharding.mesh.shape[TASK_AXIS]
    tasks = jax.tree.map(lambda x: _split_rows(x, shards), (support, query))
    curves = jax.vmap(all_tasks)(shard_tasks(tasks, sharding))
    curves = curves.reshape(-1, curves.shape[-1])[:jax.tree.leaves(support)[0].shape[0]]
    return jax.lax.with_sharding_constraint(curves, replicated(sharding))


def _split_rows(x, parts):
    """(T, ...) -> (parts, ceil(T / parts), ...), repeating the last row to fill up."""
    rows = -(-x.shape[0] // parts)
    padded = jnp.concatenate([x, jnp.repeat(x[-1:], rows * parts - x.shape[0], axis=0)])
    return padded.reshape(parts, rows, *x.shape[1:])


def finetune_curves(params: PyTree, loss_fn: LossFn, support: Batch, query: Batch,
                    inner_lr: ArrayLike | PyTree, steps: int, *,
                    metric_fn: LossFn | None = None, task_chunk: int | None = None,
                    adapt: Mask = None, lr_per_step: bool = False,
                    signed_lr: bool = False, devices: Devices = None) -> np.ndarray:
    """A metric of each task after 0, 1, ..., ``steps`` fine-tuning steps.

    Args:
      params: θ, the initialisation being evaluated.
      loss_fn: ``loss_fn(params, batch) -> scalar``, used for fine-tuning.
      support, query: batches with a leading task axis, e.g. ``support_x: (T, K, 1)``.
      inner_lr: fine-tuning step size α (any form :func:`minimaml.maml.inner_loop`
        takes: a number, rates per tensor or per entry, per step with ``lr_per_step``).
      steps: fine-tuning budget (int >= 0).
      metric_fn: ``metric_fn(params, query) -> scalar`` measured at every step
        (e.g. accuracy); None measures ``loss_fn`` on the query set.
      task_chunk: evaluate this many tasks at a time (``lax.map`` batch size) to bound
        memory (per device, with ``devices``); None evaluates all tasks in one ``vmap``.
      adapt, lr_per_step: as in :func:`minimaml.maml.inner_loop` (e.g. ANIL's head-only
        fine-tuning, MAML++'s per-step rates: then ``inner_lr`` has ``steps`` rows).
      signed_lr: the rates may be negative (meta-learned ones, as in Meta-SGD); they
        are checked to be finite only.
      devices: split the tasks across devices as :func:`minimaml.train.optimize` does
        (a count, a list of devices or a ``Mesh`` with a ``"tasks"`` axis); a task
        count that does not divide is padded with copies of the last task, whose
        curves are dropped. None: no split (in a single process).

    The computation is jitted once per (loss_fn, metric_fn, steps, task_chunk) and
    shapes, with θ and α as arguments, so evaluating many checkpoints compiles once.

    Returns:
      (T, steps + 1) numpy array; column n is the metric after n steps.
    """
    steps = check_int(steps, "steps", 0)
    inner_lr = check_inner_lr(params, inner_lr, steps, lr_per_step, positive=not signed_lr)
    adapt = check_adapt(params, adapt)
    if task_chunk is not None:
        task_chunk = check_int(task_chunk, "task_chunk", 1)
    num_tasks = {np.shape(leaf)[0] if np.ndim(leaf) else 0
                 for leaf in jax.tree.leaves((support, query))}
    if len(num_tasks) != 1 or min(num_tasks) < 1:
        raise ValueError(f"support and query must hold the same number of tasks (>= 1) on "
                         f"their leading axis; got {sorted(num_tasks)}")
    sharding = task_sharding(devices)
    if sharding is not None:
        params, inner_lr, support, query = replicate((params, inner_lr, support, query),
                                                     sharding)
    return np.asarray(_curves(params, inner_lr, support, query, loss_fn=loss_fn,
                              metric_fn=loss_fn if metric_fn is None else metric_fn,
                              steps=steps, task_chunk=task_chunk, adapt=adapt,
                              lr_per_step=bool(lr_per_step), sharding=sharding))


def mean_ci95(values: ArrayLike, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of the 95% confidence interval, 1.96·std/√n, along ``axis``."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    if n < 1:
        raise ValueError(f"mean_ci95 needs at least one value along axis {axis}; got shape "
                         f"{values.shape}")
    return values.mean(axis=axis), 1.96 * values.std(axis=axis) / np.sqrt(n)
