"""Meta-training with optax: many jitted steps per call, task sampling inside.

One routine, :func:`optimize`, fits any ``objective(params, support, query)`` on task
batches drawn from ``sample_tasks(key)``. The recipes are compositions of it:

- :func:`meta_train` — MAML / first-order MAML: the objective is ``maml_objective``.
- :func:`pretrain` — the paper's "pretrained" baseline: plain regression on tasks
  drawn from p(T) (``query_loss``, no adaptation inside the objective).
"""
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from .checks import check_int
from .maml import check_inner_lr, check_steps, maml_objective, query_loss


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


def optimize(objective, params, sample_tasks, key, *, steps, lr=1e-3, optimizer=None,
             steps_per_call=1000, opt_state=None, start_step=0, on_chunk=None,
             progress=True, desc="meta-training", lr_names="lr"):
    """Minimise ``objective`` over freshly sampled task batches with an optax optimizer.

    Each step draws a task batch with ``sample_tasks(fold_in(key, step))`` — so the
    tasks of step n do not depend on how the steps are split into calls — takes
    ``jax.value_and_grad(objective)`` and applies one optimizer update. Chunks of
    ``steps_per_call`` steps run inside one jitted ``lax.scan``, so Python overhead is
    paid once per chunk, not once per step.

    Args:
      objective: ``objective(params, support, query) -> scalar``.
      params: initial parameter pytree.
      sample_tasks: ``sample_tasks(key) -> (support, query)``, batches with a
        leading task axis.
      key: a ``jax.random`` key.
      steps: total number of optimizer steps to reach (counting from 0).
      lr: learning rate of the default ``optax.adam`` (β in the paper).
      optimizer: an ``optax.GradientTransformation`` to use instead of Adam.
      opt_state, start_step: resume from a saved state: run steps
        ``start_step .. steps-1`` only.
      on_chunk: called as ``on_chunk(step, params, opt_state, losses)`` after each
        chunk, ``step`` being the number of steps done so far (for checkpoints, logs).
      progress: show a tqdm progress bar.
      lr_names: how the error message names the learning rates, if training diverges.

    Returns:
      ``(params, opt_state, losses)``, losses a float numpy array of the objective at
      each step run, in order.

    Raises:
      TrainingDiverged: the objective became NaN/inf; the message names the step.
    """
    check_int(steps, "steps", 1)
    check_int(steps_per_call, "steps_per_call", 1)
    if optimizer is None:
        check_inner_lr(lr, "lr")
        optimizer = optax.adam(lr)
    if opt_state is None:
        opt_state = optimizer.init(params)

    def one_step(carry, step):
        params, opt_state = carry
        support, query = sample_tasks(jax.random.fold_in(key, step))
        loss, grads = jax.value_and_grad(objective)(params, support, query)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    @partial(jax.jit, static_argnums=3)
    def run_chunk(params, opt_state, first_step, length):
        step_numbers = first_step + jnp.arange(length)
        (params, opt_state), losses = jax.lax.scan(one_step, (params, opt_state), step_numbers)
        return params, opt_state, losses

    all_losses = []
    bar = tqdm(total=steps, initial=start_step, desc=desc, disable=not progress,
               unit="step", dynamic_ncols=True)
    step = start_step
    try:
        while step < steps:
            length = min(steps_per_call, steps - step)
            params, opt_state, losses = run_chunk(params, opt_state, step, length)
            losses = np.asarray(losses)
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size:
                where = step + int(bad[0])
                raise TrainingDiverged(
                    f"{desc} diverged: the loss became {losses[bad[0]]} at step {where}; "
                    f"try a smaller learning rate ({lr_names}).")
            all_losses.append(losses)
            step += length
            bar.update(length)
            bar.set_postfix(loss=f"{losses[-min(100, length):].mean():.4g}")
            if on_chunk is not None:
                on_chunk(step, params, opt_state, losses)
    finally:
        bar.close()
    losses = np.concatenate(all_losses) if all_losses else np.zeros((0,), np.float32)
    return params, opt_state, losses


def meta_train(loss_fn, params, sample_tasks, key, *, meta_steps, inner_lr, inner_steps=1,
               first_order=False, meta_lr=1e-3, remat=False, **kwargs):
    """MAML meta-training (second order unless ``first_order=True``) with Adam(meta_lr).

    Minimises ``maml_objective`` with ``inner_steps`` SGD steps of size ``inner_lr``
    (α) per task; ``meta_lr`` is β. Other keyword arguments go to :func:`optimize`.
    Returns ``(params, opt_state, losses)``.
    """
    check_inner_lr(inner_lr)
    check_steps(inner_steps)
    objective = partial(maml_objective, loss_fn=loss_fn, inner_lr=inner_lr,
                        inner_steps=inner_steps, first_order=first_order, remat=remat)
    kwargs.setdefault("desc", "FOMAML" if first_order else "MAML")
    return optimize(lambda p, s, q: objective(p, support=s, query=q), params, sample_tasks,
                    key, steps=meta_steps, lr=meta_lr,
                    lr_names=f"meta_lr={meta_lr}, inner_lr={inner_lr}", **kwargs)


def pretrain(loss_fn, params, sample_tasks, key, *, steps, lr=1e-3, **kwargs):
    """The pretrained baseline: plain regression on task batches from p(T), Adam(lr).

    Uses the same task sampler, batch size and optimizer as MAML, but the objective
    is the loss at θ itself (``query_loss``): no inner loop. Returns
    ``(params, opt_state, losses)``.
    """
    kwargs.setdefault("desc", "pretraining")
    return optimize(lambda p, s, q: query_loss(p, loss_fn, s, q), params, sample_tasks, key,
                    steps=steps, lr=lr, lr_names=f"lr={lr}", **kwargs)
