"""Chapter 7's exercises: the largest stable step size of a task, and what the widget draws."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..maml import inner_loop
from ..nets import mlp_apply
from ..sinusoid import sine_loss
from .harness import Case, Exercise, random_mlp, sine_support_query, tree_difference


def _eigenvalues(params, loss_fn, support):
    flat, unravel = ravel_pytree(params)
    hessian = jax.hessian(lambda t: loss_fn(unravel(t), support))(flat)
    return np.linalg.eigvalsh(np.asarray(hessian, np.float64))


def _stability_cases(rng):
    """Small networks whose largest |eigenvalue| is positive and well apart from the
    next, so that 100 steps of power iteration settle to well within the tolerance."""
    cases = []
    while len(cases) < 2:
        params = random_mlp(rng, (1, 10, 10, 1), scale=0.6)
        support, _ = sine_support_query(rng, None, 10, 1)
        by_size = sorted(_eigenvalues(params, sine_loss, support), key=abs)
        if by_size[-1] > 0 and abs(by_size[-1]) > 1.5 * abs(by_size[-2]):
            cases.append(Case((params, sine_loss, support), f"a 1-10-10-1 network, case {len(cases) + 1}"))
    return cases


def _stability_limit(params, loss_fn, support, factor=2.0):
    return factor / float(np.max(np.abs(_eigenvalues(params, loss_fn, support))))


def _within_2_percent(got, want):
    try:
        got = float(np.asarray(got))
    except (TypeError, ValueError):
        return f"return one number (a step size); got shape {np.shape(got)}"
    if not np.isfinite(got):
        return f"you returned {got}"
    return None if abs(got - want) <= 0.02 * abs(want) else f"you returned {got:.5g}, expected {want:.5g}"


check_stability_limit = Exercise(
    "stability_limit", _stability_limit, _stability_cases, compare=_within_2_percent,
    mistakes=[(lambda *a: _stability_limit(*a, factor=1.0),
               "that is 1/λ_max; gradient descent on a quadratic is stable up to α = 2/λ_max"),
              (lambda p, f, s: float(np.max(np.abs(_eigenvalues(p, f, s)))),
               "that is λ_max itself; the limit on the step size is 2/λ_max")])


def _prediction_cases(rng):
    cases = []
    for shots, steps in ((5, 2), (10, 10)):
        params = random_mlp(rng, (1, 16, 16, 1), scale=0.3)
        support, _ = sine_support_query(rng, None, shots, 1)
        x = jnp.linspace(-5.0, 5.0, 50)[:, None]
        cases.append(Case((params, support, x, 0.02, steps), f"K={shots}, {steps} steps"))
    return cases


def _adapted_prediction(params, support, x, inner_lr, steps):
    return mlp_apply(inner_loop(params, sine_loss, support, inner_lr, steps), x)


check_adapted_prediction = Exercise(
    "adapted_prediction", _adapted_prediction, _prediction_cases,
    compare=lambda got, want: tree_difference(got, want, rtol=1e-3, atol=1e-5),
    mistakes=[(lambda p, s, x, a, n: mlp_apply(p, x),
               "that is the prediction of θ before any step; fine-tune first"),
              (lambda p, s, x, a, n: _adapted_prediction(p, s, x, a, max(n - 1, 0)),
               "one step short: take `steps` SGD steps"),
              (lambda p, s, x, a, n: _adapted_prediction(p, s, x, a, n + 1),
               "one step too many: take `steps` SGD steps")])
