"""Chapter 3's exercises: task losses under vmap, a meta-test curve with its 95% CI,
and the best single function for all sinusoid tasks."""
import math
from functools import partial

import jax
import jax.numpy as jnp

from ..evaluate import finetune_curves
from ..maml import task_loss
from ..sinusoid import AMPLITUDE_RANGE, sine_loss
from .harness import Case, Exercise, random_mlp, sine_support_query


def _losses_cases(rng):
    cases = []
    for tasks, shots, inner_lr in ((4, 5, 0.01), (7, 10, 0.05)):
        params = random_mlp(rng, (1, 16, 16, 1), scale=0.3)
        support, query = sine_support_query(rng, tasks, shots, 10)
        cases.append(Case((params, sine_loss, support, query, inner_lr),
                          f"{tasks} tasks, K={shots}, α={inner_lr}"))
    return cases


@partial(jax.jit, static_argnums=1)
def _task_losses(params, loss_fn, support, query, inner_lr):
    return jax.vmap(lambda s, q: task_loss(params, loss_fn, s, q, inner_lr, 1))(support, query)


check_task_losses = Exercise(
    "task_losses", _task_losses, _losses_cases,
    mistakes=[(lambda *a: jnp.mean(_task_losses(*a)),
               "one number came back: return one loss per task, shape (tasks,), not their mean"),
              (lambda p, f, s, q, a: jax.vmap(f, in_axes=(None, 0))(p, q),
               "these are the query losses at θ itself: adapt θ on each task's support set "
               "first (one SGD step), then measure the query set"),
              (lambda p, f, s, q, a: _task_losses(p, f, q, q, a),
               "the adaptation step used the query set; adapt on the support set, measure "
               "on the query set")])


def _curve_cases(rng):
    cases = []
    for tasks, shots, steps in ((12, 5, 3), (30, 10, 5)):
        params = random_mlp(rng, (1, 16, 16, 1), scale=0.3)
        support, query = sine_support_query(rng, tasks, shots, 20)
        cases.append(Case((params, sine_loss, support, query, 0.02, steps),
                          f"{tasks} tasks, K={shots}, {steps} steps"))
    return cases


def _meta_test_curve(params, loss_fn, support, query, inner_lr, steps, ddof=0, z=1.96,
                     root_n=True):
    curves = finetune_curves(params, loss_fn, support, query, inner_lr, steps)   # (T, steps + 1)
    spread = curves.std(axis=0, ddof=ddof)
    return curves.mean(axis=0), z * spread / (math.sqrt(len(curves)) if root_n else 1.0)


check_meta_test_curve = Exercise(
    "meta_test_curve", _meta_test_curve, _curve_cases,
    accept=[lambda *a: _meta_test_curve(*a, ddof=1)],     # the sample std is as good
    mistakes=[(lambda *a: _meta_test_curve(*a, root_n=False),
               "the interval is missing 1/√n: the CI of a mean is 1.96·std/√(number of tasks)"),
              (lambda *a: _meta_test_curve(*a, ddof=1, root_n=False),
               "the interval is missing 1/√n: the CI of a mean is 1.96·std/√(number of tasks)"),
              (lambda *a: _meta_test_curve(*a, z=2.0),
               "use 1.96, the normal distribution's 97.5% point, for a 95% interval"),
              (lambda *a: _meta_test_curve(*a, z=1.0),
               "that is the standard error; the 95% interval is 1.96 times it")])


def _x_cases(rng):
    return [Case((jnp.asarray(rng.uniform(-5, 5, (40, 1)), jnp.float32),), "x of shape (40, 1)"),
            Case((jnp.linspace(-5.0, 5.0, 11),), "x = linspace(-5, 5, 11)")]


def _best_single_function(x, factor=-2 / math.pi):
    mean_amplitude = sum(AMPLITUDE_RANGE) / 2
    return factor * mean_amplitude * jnp.cos(x)


check_best_single_function = Exercise(
    "best_single_function", _best_single_function, _x_cases,
    mistakes=[(lambda x: _best_single_function(x, 2 / math.pi),
               "the sign is flipped: average sin(x − φ) over φ ∈ [0, π] gives −(2/π)·cos x"),
              (lambda x: _best_single_function(x, -1.0),
               "the average over φ ∈ [0, π] of sin(x − φ) is −(2/π)·cos x: the 2/π is missing"),
              (lambda x: jnp.zeros_like(x),
               "zero is the best guess only if the phases covered a whole period; "
               "φ ∈ [0, π] covers half, so the average wave is not zero"),
              (lambda x: -2 / math.pi * AMPLITUDE_RANGE[1] * jnp.cos(x),
               "use the mean amplitude E[A] = (0.1 + 5.0)/2, not the largest")])

