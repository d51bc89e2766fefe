"""MAML (Finn, Abbeel & Levine, 2017), Eq. 1 of the paper in code.

    θ'_i = θ − α ∇_θ L_Ti(f_θ)                      (inner loop, on the support set)
    min_θ  Σ_i L_Ti(f_θ'_i)                         (meta-objective, on the query set)

Model-agnostic: this file imports no network and no dataset. Everything takes a
``loss_fn(params, batch) -> scalar``, where ``params`` is any pytree and ``batch`` is
whatever pytree the loss reads (for regression ``(x, y)``). Support and query sets
are such batches; for a batch of tasks they carry one more leading axis. ``params``
comes first in every function, as in ``jax.grad``'s default ``argnums=0``.

The meta-gradient is simply ``jax.grad(maml_objective)``: a gradient of a function
that itself calls ``jax.grad``, i.e. a gradient of a gradient.

The same loop serves MAML's relatives (:mod:`minimaml.family`) through a few knobs,
all off by default: α per tensor, per entry or per step (``inner_lr`` as a pytree,
``lr_per_step``), which parameters adapt (``adapt``), and a query loss after every
inner step (``query_weights``).

The exported functions check their arguments (a ValueError naming the argument); the
private ``_``-functions below them trust theirs.
"""
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .checks import check_adapt, check_inner_lr, check_int, check_query_weights
from .types import ArrayLike, Batch, LossFn, Mask, PyTree

REMAT_LEVELS = 3  # nesting depth of the checkpointed blocks when remat=True


class Trajectory(NamedTuple):
    """What the inner loop saw, step by step (for plots, widgets and evaluation).

    params: the parameter pytree with a leading axis of size ``inner_steps + 1``:
        ``params[0]`` is θ, ``params[n]`` is θ after n SGD steps.
    losses: (inner_steps + 1,) support loss of each ``params[n]``.
    """
    params: PyTree
    losses: jax.Array


def sgd_step(params: PyTree, loss_fn: LossFn, support: Batch, inner_lr: ArrayLike | PyTree,
             first_order: bool = False) -> tuple[PyTree, jax.Array]:
    """One inner SGD step θ → θ − α ∇L_support(θ). Returns (new params, loss at θ).

    α is a number, or a pytree with the params' structure (one rate per tensor or per
    entry, multiplied elementwise). With ``first_order=True`` the gradient is treated
    as a constant (``stop_gradient``), so differentiating through this step sees
    dθ'/dθ = I: first-order MAML (FOMAML), which drops the second-derivative term.
    """
    loss, grads = jax.value_and_grad(loss_fn)(params, support)
    if first_order:
        grads = jax.lax.stop_gradient(grads)
    if jax.tree.structure(inner_lr) == jax.tree.structure(params):
        new_params = jax.tree.map(lambda p, g, lr: p - lr * g, params, grads, inner_lr)
    else:
        new_params = jax.tree.map(lambda p, g: p - inner_lr * g, params, grads)
    return new_params, loss


def _check_inner(params, inner_lr, inner_steps, adapt=None, lr_per_step=False,
                 query_weights=None):
    inner_steps = check_int(inner_steps, "inner_steps", 0)
    return (check_inner_lr(params, inner_lr, inner_steps, lr_per_step), inner_steps,
            check_adapt(params, adapt), check_query_weights(query_weights, inner_steps))


def inner_loop(params: PyTree, loss_fn: LossFn, support: Batch, inner_lr: ArrayLike | PyTree,
               inner_steps: int = 1, *, first_order: bool = False, trajectory: bool = False,
               remat: bool = False, adapt: Mask = None,
               lr_per_step: bool = False) -> PyTree | tuple[PyTree, Trajectory]:
    """Adapt ``params`` to one task: ``inner_steps`` SGD steps of size α on the support loss.

    Every step uses the same support batch (the paper's protocol). The steps are
    unrolled with ``lax.scan``, so compile time does not grow with ``inner_steps``.

    Args:
      params: θ, any pytree.
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      support: the task's support batch, e.g. ``(support_x: (K, 1), support_y: (K, 1))``.
      inner_lr: α, finite and > 0 (may be a traced value): a number; or a pytree with
        the params' structure, or a prefix of it (one rate per layer), whose leaves are
        ``()`` (one rate per tensor) or the parameter's shape (one per entry, Meta-SGD).
      inner_steps: number of SGD steps, an int >= 0.
      first_order: treat inner gradients as constants (FOMAML).
      trajectory: also return a :class:`Trajectory` of all intermediate params.
      remat: trade compute for memory with many steps: each step is wrapped in
        ``jax.checkpoint`` (the backward pass recomputes its intermediates) and the
        steps are grouped into nested checkpointed blocks, so backprop keeps about
        ``REMAT_LEVELS · n^(1/REMAT_LEVELS)`` intermediate params instead of n
        (one checkpoint per step, not nested, with per-step rates).
      adapt: which parameters adapt (the others stay θ and are not differentiated in
        the inner loop at all, as in ANIL): None (all), a pytree of bools with the
        params' structure or a prefix of it, or a predicate ``(path, leaf) -> bool``.
      lr_per_step: ``inner_lr`` has a leading axis of length ``inner_steps``; row t is
        the rate of step t (MAML++'s per-step rates).

    Returns:
      θ' (the adapted params), or ``(θ', Trajectory)`` when ``trajectory=True``.
    """
    inner_lr, inner_steps, adapt, _ = _check_inner(params, inner_lr, inner_steps, adapt,
                                                   lr_per_step)
    return _inner_loop(params, loss_fn, support, inner_lr, inner_steps, first_order,
                       trajectory, remat, adapt, lr_per_step)


def _inner_loop(params, loss_fn, support, inner_lr, inner_steps, first_order=False,
                trajectory=False, remat=False, adapt=None, lr_per_step=False):
    adapted, seen, _ = _adapt(params, loss_fn, support, inner_lr, inner_steps, first_order,
                              trajectory, remat, adapt, lr_per_step)
    return (adapted, seen) if trajectory else adapted


def _adapt(params, loss_fn, support, inner_lr, inner_steps, first_order=False,
           trajectory=False, remat=False, adapt=None, lr_per_step=False, observe=None):
    """The inner loop. Returns ``(θ', Trajectory or None, observed or None)``, where
    ``observed`` stacks ``observe(θ_t)`` after each step t = 1..inner_steps."""
    if adapt is not None:
        return _adapt_some(params, loss_fn, support, inner_lr, inner_steps, first_order,
                           trajectory, remat, adapt, lr_per_step, observe)

    def step(current, lr_t):
        return sgd_step(current, loss_fn, support, inner_lr if lr_t is None else lr_t,
                        first_order)

    if remat:
        step = jax.checkpoint(step)
        if not (trajectory or lr_per_step or observe):
            adapted = _nested_checkpoint_steps(lambda p: step(p, None)[0], params,
                                               inner_steps, REMAT_LEVELS)
            return adapted, None, None

    def body(current, lr_t):
        new, loss = step(current, lr_t)
        return new, ((current, loss) if trajectory else None,
                     None if observe is None else observe(new))

    adapted, (seen, observed) = jax.lax.scan(body, params, inner_lr if lr_per_step else None,
                                             length=inner_steps)
    if not trajectory:
        return adapted, None, observed
    params_before, losses_before = seen
    all_params = jax.tree.map(lambda before, last: jnp.concatenate([before, last[None]]),
                              params_before, adapted)
    all_losses = jnp.append(losses_before, loss_fn(adapted, support))
    return adapted, Trajectory(all_params, all_losses), observed


def _adapt_some(params, loss_fn, support, inner_lr, inner_steps, first_order, trajectory,
                remat, adapt, lr_per_step, observe):
    """The inner loop over the adapting leaves only: the frozen ones enter the loss as
    constants of the inner loop, so its gradients never reach them (the meta-gradient
    still does, through the loss)."""
    leaves, treedef = jax.tree.flatten(params)
    free = [leaf for leaf, flag in zip(leaves, adapt) if flag]
    frozen = [leaf for leaf, flag in zip(leaves, adapt) if not flag]

    def merge(free_leaves, frozen_leaves=frozen):
        free_it, frozen_it = iter(free_leaves), iter(frozen_leaves)
        return treedef.unflatten([next(free_it) if flag else next(frozen_it) for flag in adapt])

    if jax.tree.structure(inner_lr) == treedef:
        inner_lr = [rate for rate, flag in zip(jax.tree.leaves(inner_lr), adapt) if flag]
    adapted, seen, observed = _adapt(
        free, lambda free_leaves, batch: loss_fn(merge(free_leaves), batch), support,
        inner_lr, inner_steps, first_order, trajectory, remat, None, lr_per_step,
        None if observe is None else lambda free_leaves: observe(merge(free_leaves)))
    if seen is not None:
        stacked = [jnp.broadcast_to(leaf, (inner_steps + 1, *jnp.shape(leaf)))
                   for leaf in frozen]
        seen = Trajectory(merge(seen.params, stacked), seen.losses)
    return merge(adapted), seen, observed


def _nested_checkpoint_steps(step, params, num_steps, levels):
    """Apply ``step`` ``num_steps`` times, keeping few intermediate params for backprop.

    A plain ``lax.scan`` keeps the params of every step for the backward pass, so memory
    grows like n. Here the steps are cut into checkpointed blocks of about
    n^((levels-1)/levels) steps, each block cut the same way one level down: the backward
    pass keeps one params per block per level (about levels · n^(1/levels) in all) and
    recomputes the rest, at the price of about ``levels`` extra forward passes.
    """
    if levels <= 1 or num_steps <= 1:
        return jax.lax.scan(lambda p, _: (step(p), None), params, length=num_steps)[0]
    block = math.ceil(num_steps ** ((levels - 1) / levels))
    num_blocks, rest = divmod(num_steps, block)
    run_block = jax.checkpoint(lambda p: _nested_checkpoint_steps(step, p, block, levels - 1))
    params = jax.lax.scan(lambda p, _: (run_block(p), None), params, length=num_blocks)[0]
    return _nested_checkpoint_steps(step, params, rest, levels - 1)


def _task_loss(params, loss_fn, support, query, inner_lr, inner_steps, first_order, remat,
               adapt=None, lr_per_step=False, query_weights=None):
    if query_weights is None:
        adapted = _inner_loop(params, loss_fn, support, inner_lr, inner_steps, first_order,
                              remat=remat, adapt=adapt, lr_per_step=lr_per_step)
        return loss_fn(adapted, query)
    _, _, per_step = _adapt(params, loss_fn, support, inner_lr, inner_steps, first_order,
                            remat=remat, adapt=adapt, lr_per_step=lr_per_step,
                            observe=lambda p: loss_fn(p, query))
    return jnp.sum(query_weights * per_step)


def task_loss(params: PyTree, loss_fn: LossFn, support: Batch, query: Batch,
              inner_lr: ArrayLike | PyTree, inner_steps: int = 1, *, first_order: bool = False,
              remat: bool = False, adapt: Mask = None, lr_per_step: bool = False,
              query_weights: ArrayLike | None = None) -> jax.Array:
    """L_Ti(f_θ'): the query loss of the params adapted on the support set (one task).

    With ``query_weights`` (shape ``(inner_steps,)``): Σ_t w_t L_query(θ_t), the query
    loss after every inner step, weighted (MAML++'s multi-step loss). The other
    arguments are :func:`inner_loop`'s.
    """
    inner_lr, inner_steps, adapt, query_weights = _check_inner(
        params, inner_lr, inner_steps, adapt, lr_per_step, query_weights)
    return _task_loss(params, loss_fn, support, query, inner_lr, inner_steps, first_order,
                      remat, adapt, lr_per_step, query_weights)


def maml_objective(params: PyTree, loss_fn: LossFn, support: Batch, query: Batch,
                   inner_lr: ArrayLike | PyTree, inner_steps: int = 1, *,
                   first_order: bool = False, remat: bool = False, adapt: Mask = None,
                   lr_per_step: bool = False,
                   query_weights: ArrayLike | None = None) -> jax.Array:
    """The MAML meta-objective: mean over a batch of tasks of the post-adaptation query loss.

    ``jax.grad(maml_objective)(params, ...)`` is the meta-gradient. ``support`` and
    ``query`` are batches with a leading task axis, e.g. ``support_x: (tasks, K, 1)``;
    the tasks are mapped with ``jax.vmap``. The keyword arguments are
    :func:`task_loss`'s: with their defaults this is the paper's Eq. 1.
    """
    inner_lr, inner_steps, adapt, query_weights = _check_inner(
        params, inner_lr, inner_steps, adapt, lr_per_step, query_weights)
    per_task = jax.vmap(lambda s, q: _task_loss(params, loss_fn, s, q, inner_lr, inner_steps,
                                                first_order, remat, adapt, lr_per_step,
                                                query_weights))
    return jnp.mean(per_task(support, query))


def query_loss(params: PyTree, loss_fn: LossFn, support: Batch, query: Batch) -> jax.Array:
    """Plain (non-meta) objective over a batch of tasks: the query loss at θ itself.

    This is what the paper's "pretrained" baseline minimises: regression on tasks
    drawn from p(T), with no adaptation inside the objective. ``support`` is
    accepted (and ignored) so this has the same signature as :func:`maml_objective`.
    """
    del support
    return jnp.mean(jax.vmap(loss_fn, in_axes=(None, 0))(params, query))
