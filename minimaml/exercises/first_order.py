"""Chapter 5's exercises: the first-order meta-gradient, the angle between two gradients,
and Reptile's direction."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..maml import inner_loop, maml_objective
from ..sinusoid import sine_loss
from .harness import Case, Exercise, random_like, random_mlp, sine_support_query, tree_difference


def _meta_batch_cases(rng):
    cases = []
    for tasks, inner_lr in ((5, 0.05), (8, 0.1)):
        params = random_mlp(rng, (1, 16, 16, 1), scale=0.4)
        support, query = sine_support_query(rng, tasks, 10, 10)
        cases.append(Case((params, sine_loss, support, query, inner_lr),
                          f"{tasks} tasks, α={inner_lr}"))
    return cases


@partial(jax.jit, static_argnums=(1, 5))
def _meta_gradient(params, loss_fn, support, query, inner_lr, first_order=True):
    return jax.grad(maml_objective)(params, loss_fn, support, query, inner_lr, 1,
                                    first_order=first_order)


def _summed(params, loss_fn, support, query, inner_lr):
    grads = _meta_gradient(params, loss_fn, support, query, inner_lr)
    return jax.tree.map(lambda g: g * support[0].shape[0], grads)


def _grad_at_theta(params, loss_fn, support, query, inner_lr):
    return jax.grad(lambda p: jnp.mean(jax.vmap(loss_fn, in_axes=(None, 0))(p, query)))(params)


def _close(got, want):
    return tree_difference(got, want, rtol=1e-3, atol=1e-5)


check_first_order_meta_gradient = Exercise(
    "first_order_meta_gradient", _meta_gradient, _meta_batch_cases, compare=_close,
    mistakes=[(lambda *a: _meta_gradient(*a, first_order=False),
               "that is the full second-order meta-gradient; first-order MAML treats the "
               "inner gradient as a constant: average ∇L_query(θ'_i), the gradient at the "
               "adapted params (or stop_gradient the inner gradient)"),
              (_summed, "summed over tasks; the meta-objective is the mean over tasks"),
              (_grad_at_theta, "that is the gradient of the query loss at θ itself; "
                               "take it at each task's adapted θ'_i")])


def _angle_cases(rng):
    params = random_mlp(rng, (1, 8, 8, 1))
    a = random_like(rng, params)
    nearly_a = jax.tree.map(lambda x, n: x + 0.3 * n, a, random_like(rng, params))
    flipped = jax.tree.map(lambda x, n: -x + 0.5 * n, a, random_like(rng, params))
    return [Case((a, nearly_a), "two similar pytrees"), Case((a, flipped), "nearly opposite"),
            Case((jnp.asarray([1.0, 0.0]), jnp.asarray([1.0, 1.0])), "[1, 0] and [1, 1]: 45°")]


def _cosine(a, b):
    a, b = ravel_pytree(a)[0], ravel_pytree(b)[0]
    return jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b))


def _per_leaf_mean_angle(a, b):
    return np.mean([float(np.degrees(np.arccos(np.clip(_cosine(x, y), -1, 1))))
                    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))])


def _as_number(got, want):
    try:
        got = float(np.asarray(got))
    except (TypeError, ValueError):
        return f"return one number (degrees); got {type(got).__name__} of shape {np.shape(got)}"
    return None if abs(got - float(want)) <= 1e-2 else f"you returned {got:.4g}°, expected {float(want):.4g}°"


check_gradient_angle = Exercise(
    "gradient_angle", lambda a, b: jnp.degrees(jnp.arccos(jnp.clip(_cosine(a, b), -1, 1))),
    _angle_cases, compare=_as_number,
    mistakes=[(lambda a, b: jnp.arccos(jnp.clip(_cosine(a, b), -1, 1)),
               "that is the angle in radians; convert to degrees (jnp.degrees)"),
              (_cosine, "that is the cosine of the angle; take arccos and convert to degrees"),
              (_per_leaf_mean_angle, "you averaged one angle per leaf; flatten the whole "
                                     "pytree into one vector first (ravel_pytree)")])


def _reptile_cases(rng):
    cases = []
    for points, steps, inner_lr in ((10, 3, 0.02), (20, 5, 0.01)):
        params = random_mlp(rng, (1, 16, 16, 1), scale=0.3)
        data, _ = sine_support_query(rng, None, points, 1)
        cases.append(Case((params, sine_loss, data, inner_lr, steps), f"{steps} steps"))
    return cases


def _reptile(params, loss_fn, data, inner_lr, steps, sign=1.0, steps_taken=None):
    phi = inner_loop(params, loss_fn, data, inner_lr, steps if steps_taken is None else steps_taken)
    return jax.tree.map(lambda t, f: sign * (t - f), params, phi)


check_reptile_direction = Exercise(
    "reptile_direction", _reptile, _reptile_cases,
    mistakes=[(lambda *a: _reptile(*a, sign=-1.0),
               "the sign is flipped: Reptile's gradient-like direction is θ − φ (the update "
               "θ ← θ − ε(θ − φ) moves θ towards φ)"),
              (lambda p, f, d, a, n: inner_loop(p, f, d, a, n),
               "that is φ itself (the adapted params); the direction is θ − φ"),
              (lambda p, f, d, a, n: _reptile(p, f, d, a, n, steps_taken=1),
               "that is one SGD step's worth; run `steps` steps to get φ")])
