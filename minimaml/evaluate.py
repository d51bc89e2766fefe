"""The meta-test protocol: fresh tasks, a fixed fine-tuning budget, mean ± 95% CI.

Separate from training: the tasks here were never seen by the meta-learner, each is
fine-tuned from the same θ with plain SGD on its K support points (the same points
at every step), and the loss is measured on that task's held-out query points.
"""
import jax
import jax.numpy as jnp
import numpy as np

from .maml import check_steps, inner_loop


def finetune_curves(loss_fn, params, support, query, inner_lr, steps, *, task_chunk=None):
    """Query loss of each task after 0, 1, ..., ``steps`` fine-tuning steps.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` (used for fine-tuning and testing).
      params: θ, the initialisation being evaluated.
      support, query: batches with a leading task axis, e.g. ``support_x: (T, K, 1)``.
      inner_lr: fine-tuning step size α.
      steps: fine-tuning budget (int >= 0).
      task_chunk: evaluate this many tasks at a time (``lax.map`` batch size) to bound
        memory; None evaluates all tasks in one ``vmap``.

    Returns:
      (T, steps + 1) numpy array; column n is the query loss after n steps.
    """
    check_steps(steps, "steps")

    def one_task(task):
        task_support, task_query = task
        _, traj = inner_loop(loss_fn, params, task_support, inner_lr, steps, trajectory=True)
        return jax.vmap(loss_fn, in_axes=(0, None))(traj.params, task_query)

    curves = jax.jit(lambda s, q: jax.lax.map(one_task, (s, q), batch_size=task_chunk)
                     if task_chunk else jax.vmap(one_task)((s, q)))(support, query)
    return np.asarray(curves)


def mean_ci95(values, axis=0):
    """Mean and half-width of the 95% confidence interval, 1.96·std/√n, along ``axis``."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    return values.mean(axis=axis), 1.96 * values.std(axis=axis) / np.sqrt(n)
