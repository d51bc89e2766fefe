"""Chapter 2's exercises: a Hessian-vector product, the Gauss-Newton part of the Hessian,
and the meta-gradient through two inner steps."""
from functools import partial

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..maml import inner_loop, task_loss
from ..nets import mlp_apply
from ..sinusoid import sine_loss
from .harness import Case, Exercise, random_like, random_mlp, sine_support_query, tree_difference

# float32 products summed in another order differ in the 4th digit or so.
_compare = partial(tree_difference, rtol=2e-3, atol=1e-5)


def _cubic(x):
    return jnp.sum(jnp.sin(x) * x ** 2)


def _hvp_cases(rng):
    x = jnp.asarray(rng.normal(size=6), jnp.float32)
    params = random_mlp(rng, (1, 8, 8, 1))
    support, _ = sine_support_query(rng, None, 10, 1)
    return [Case((_cubic, x, random_like(rng, x)), "f(x) = Σ sin(x)·x² on an array"),
            Case((lambda p: sine_loss(p, support), params, random_like(rng, params)),
                 "an MLP's support loss, θ and v pytrees")]


def _hvp_dense(f, theta, v):
    """H v with H formed explicitly (the slow way the exercise avoids)."""
    flat, unravel = ravel_pytree(theta)
    hessian = jax.hessian(lambda t: f(unravel(t)))(flat)
    return unravel(hessian @ ravel_pytree(v)[0])


check_hvp = Exercise(
    "hvp", _hvp_dense, _hvp_cases, compare=_compare,
    mistakes=[(lambda f, theta, v: jax.grad(f)(theta),
               "that is the gradient ∇f(θ); H v is the derivative of the gradient along v"),
              (lambda f, theta, v: jax.jvp(f, (theta,), (v,))[1],
               "that is the directional derivative of f (one number); take jax.jvp of "
               "jax.grad(f) instead"),
              (lambda f, theta, v: v, "you returned v unchanged")])


def _gn_cases(rng):
    cases = []
    for shots, hidden in ((5, 8), (12, 6)):
        params = random_mlp(rng, (1, hidden, hidden, 1))
        x = jnp.asarray(rng.uniform(-5, 5, (shots, 1)), jnp.float32)
        cases.append(Case((params, mlp_apply, x, random_like(rng, params)),
                          f"K={shots} inputs"))
    return cases


def _jacobian(params, apply_fn, x):
    flat, unravel = ravel_pytree(params)
    return jax.jacobian(lambda t: apply_fn(unravel(t), x).reshape(-1))(flat), unravel


def _gauss_newton(params, apply_fn, x, v, scale=None):
    jac, unravel = _jacobian(params, apply_fn, x)
    scale = 2.0 / jac.shape[0] if scale is None else scale
    return unravel(scale * jac.T @ (jac @ ravel_pytree(v)[0]))


check_gauss_newton_product = Exercise(
    "gauss_newton_product", _gauss_newton, _gn_cases, compare=_compare,
    mistakes=[(partial(_gauss_newton, scale=1.0),
               "the shape is right but the scale is not: the MSE averages over the K points "
               "and its square gives a 2, so the product is (2/K)·Jᵀ(J v)"),
              (lambda p, f, x, v: _gauss_newton(p, f, x, v, 1.0 / x.shape[0]),
               "missing the factor 2 of the square: (2/K)·Jᵀ(J v)"),
              (lambda p, f, x, v: _gauss_newton(p, f, x, v, 2.0),
               "missing the 1/K of the mean: (2/K)·Jᵀ(J v)"),
              (lambda p, f, x, v: jax.jvp(lambda q: f(q, x), (p,), (v,))[1],
               "that is J v, one number per input; bring it back to parameter space with "
               "Jᵀ (jax.vjp) and scale by 2/K")])


def _two_step_cases(rng):
    cases = []
    for inner_lr in (0.05, 0.1):
        params = random_mlp(rng, (1, 16, 16, 1), scale=0.4)
        support, query = sine_support_query(rng, None, 10, 10)
        cases.append(Case((params, sine_loss, support, query, inner_lr), f"α={inner_lr}"))
    return cases


@partial(jax.jit, static_argnums=1)
def _two_step(params, loss_fn, support, query, inner_lr):
    return jax.grad(task_loss)(params, loss_fn, support, query, inner_lr, 2)


def _two_step_by_hand(params, loss_fn, support, query, inner_lr, swap=False, factors=2):
    """(I − αH(θ))(I − αH(θ')) g'', or the factors swapped / only some of them."""
    theta1 = inner_loop(params, loss_fn, support, inner_lr, 1)
    theta2 = inner_loop(theta1, loss_fn, support, inner_lr, 1)
    vector = jax.grad(loss_fn)(theta2, query)
    points = [theta1, params][:factors]
    for point in (points[::-1] if swap else points):
        hv = jax.jvp(jax.grad(lambda t: loss_fn(t, support)), (point,), (vector,))[1]
        vector = jax.tree.map(lambda g, h: g - inner_lr * h, vector, hv)
    return vector


check_two_step_meta_gradient = Exercise(
    "two_step_meta_gradient", _two_step, _two_step_cases, compare=_compare,
    mistakes=[(partial(_two_step_by_hand, swap=True),
               "the two Hessian products are in the wrong order: the one at θ' acts on g'' "
               "first, then the one at θ: (I − αH(θ))·[(I − αH(θ'))·g'']"),
              (partial(_two_step_by_hand, factors=0),
               "that is g'' = ∇L_query(θ''), the first-order meta-gradient: the two "
               "(I − αH) factors are missing"),
              (partial(_two_step_by_hand, factors=1),
               "only one (I − αH) factor, at θ'; the chain rule through two steps has one "
               "per step: (I − αH(θ))(I − αH(θ'))g''"),
              (lambda p, f, s, q, a: jax.grad(task_loss)(p, f, s, q, a, 1),
               "that is the one-step meta-gradient; take two inner steps")])
