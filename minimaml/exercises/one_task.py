"""Chapter 1's exercises: one SGD step by hand, and a fine-tuning curve."""
from functools import partial

import jax
import jax.numpy as jnp

from ..maml import inner_loop
from ..sinusoid import sine_loss
from .harness import Case, Exercise, random_mlp, sine_support_query


def _half_loss(params, batch):
    """A loss that is not sine_loss, so that a stub using sine_loss directly shows."""
    return 0.5 * sine_loss(params, batch)


def _step_cases(rng):
    cases = []
    for shots, inner_lr, loss_fn, label in ((5, 0.01, sine_loss, "K=5, α=0.01"),
                                            (10, 0.05, sine_loss, "K=10, α=0.05"),
                                            (7, 0.03, _half_loss, "a loss_fn other than sine_loss")):
        params = random_mlp(rng, (1, 16, 16, 1))
        support, _ = sine_support_query(rng, None, shots, 1)
        cases.append(Case((params, loss_fn, support, inner_lr), label))
    return cases


def _sgd_step(params, loss_fn, support, inner_lr):
    grads = jax.grad(loss_fn)(params, support)
    return jax.tree.map(lambda p, g: p - inner_lr * g, params, grads)


def _uphill(params, loss_fn, support, inner_lr):
    grads = jax.grad(loss_fn)(params, support)
    return jax.tree.map(lambda p, g: p + inner_lr * g, params, grads)


def _no_lr(params, loss_fn, support, inner_lr):
    return _sgd_step(params, loss_fn, support, 1.0)


def _fixed_loss(params, loss_fn, support, inner_lr):
    return _sgd_step(params, sine_loss, support, inner_lr)


check_sgd_step = Exercise(
    "sgd_step", _sgd_step, _step_cases,
    mistakes=[(lambda p, f, s, a: jax.grad(f)(p, s),
               "you returned the gradient ∇L, not the updated parameters θ − α∇L"),
              (_uphill, "you stepped uphill: the update is θ − α∇L (minus), not θ + α∇L"),
              (_no_lr, "the step is missing α: θ − α∇L, with α = inner_lr"),
              (_fixed_loss, "you differentiated sine_loss; use the loss_fn argument "
                            "(the check passes a different loss)")])


def _curve_cases(rng):
    cases = []
    for shots, inner_lr, steps in ((5, 0.01, 4), (10, 0.02, 7)):
        params = random_mlp(rng, (1, 16, 16, 1), scale=0.3)
        support, query = sine_support_query(rng, None, shots, 30)
        cases.append(Case((params, sine_loss, support, query, inner_lr, steps),
                          f"K={shots}, α={inner_lr}, {steps} steps"))
    return cases


@partial(jax.jit, static_argnames=("loss_fn", "steps", "measure_on"))
def _curve(params, loss_fn, support, query, inner_lr, steps, measure_on="query"):
    _, trajectory = inner_loop(params, loss_fn, support, inner_lr, steps, trajectory=True)
    data = query if measure_on == "query" else support
    return jax.vmap(loss_fn, in_axes=(0, None))(trajectory.params, data)


def _never_adapted(params, loss_fn, support, query, inner_lr, steps):
    return jnp.full(steps + 1, loss_fn(params, query))


check_finetune_curve = Exercise(
    "finetune_curve", _curve, _curve_cases,
    mistakes=[(lambda *a: _curve(*a, measure_on="support"),
               "that is the support loss; the curve measures the query set (held-out points)"),
              (lambda *a: _curve(*a)[1:],
               "the curve starts at step 0 (before any step): steps + 1 values"),
              (lambda *a: _curve(*a)[:-1],
               "one step short: after 0, 1, ..., steps steps makes steps + 1 values"),
              (_never_adapted, "every value is the loss at θ: update the params between "
                               "measurements")])

