"""The meta-test protocol: fresh tasks, a fixed fine-tuning budget, mean ± 95% CI.

Separate from training: the tasks here were never seen by the meta-learner, each is
fine-tuned from the same θ with plain SGD on its K support points (the same points
at every step), and the loss is measured on that task's held-out query points.
"""
import functools
from functools import partial

import jax
import numpy as np

from .maml import check_inner_lr, check_steps, inner_loop


def finetune_curves(loss_fn, params, support, query, inner_lr, steps, *, metric_fn=None,
                    task_chunk=None):
    """A metric of each task after 0, 1, ..., ``steps`` fine-tuning steps.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, used for fine-tuning.
      params: θ, the initialisation being evaluated.
      support, query: batches with a leading task axis, e.g. ``support_x: (T, K, 1)``.
      inner_lr: fine-tuning step size α.
      steps: fine-tuning budget (int >= 0).
      metric_fn: ``metric_fn(params, query) -> scalar`` measured at every step
        (e.g. accuracy); None measures ``loss_fn`` on the query set.
      task_chunk: evaluate this many tasks at a time (``lax.map`` batch size) to bound
        memory; None evaluates all tasks in one ``vmap``.

    The jitted computation is cached per (loss_fn, metric_fn, steps, task_chunk), with
    θ and α as arguments, so evaluating many checkpoints compiles once.

    Returns:
      (T, steps + 1) numpy array; column n is the metric after n steps.
    """
    check_steps(steps, "steps")
    check_inner_lr(inner_lr)
    run = _curves_fn(loss_fn, loss_fn if metric_fn is None else metric_fn, int(steps),
                     task_chunk)
    return np.asarray(run(params, inner_lr, support, query))


@functools.lru_cache(maxsize=32)
def _curves_fn(loss_fn, metric_fn, steps, task_chunk):
    def one_task(params, inner_lr, task):
        task_support, task_query = task
        _, traj = inner_loop(loss_fn, params, task_support, inner_lr, steps, trajectory=True)
        return jax.vmap(metric_fn, in_axes=(0, None))(traj.params, task_query)

    def run(params, inner_lr, support, query):
        per_task = partial(one_task, params, inner_lr)
        if task_chunk:
            return jax.lax.map(per_task, (support, query), batch_size=task_chunk)
        return jax.vmap(per_task)((support, query))
    return jax.jit(run)


def mean_ci95(values, axis=0):
    """Mean and half-width of the 95% confidence interval, 1.96·std/√n, along ``axis``."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    return values.mean(axis=axis), 1.96 * values.std(axis=axis) / np.sqrt(n)
