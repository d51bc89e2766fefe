"""Chapter 4's exercises: the inner loop as one ``lax.scan``, and a jitted function that
does not compile again when α changes."""
import contextlib
from typing import Iterator

import jax

from ..maml import inner_loop, task_loss
from ..sinusoid import sine_loss
from .harness import Case, Exercise, random_mlp, sine_support_query


def _scan_cases(rng):
    cases = []
    for shots, inner_lr, steps in ((5, 0.01, 3), (10, 0.02, 8)):
        params = random_mlp(rng, (1, 16, 16, 1), scale=0.3)
        support, _ = sine_support_query(rng, None, shots, 1)
        cases.append(Case((params, sine_loss, support, inner_lr, steps), f"{steps} steps"))
    return cases


def _uses_a_loop_primitive(candidate, cases):
    params, loss_fn, support, inner_lr, steps = cases[-1].args
    jaxpr = str(jax.make_jaxpr(lambda p: candidate(p, loss_fn, support, inner_lr, steps))(params))
    if "scan" not in jaxpr and "while" not in jaxpr:
        return ("the numbers are right, but the traced program holds no loop: a Python "
                "`for` unrolls `steps` copies of the step into it; use jax.lax.scan")
    return None


check_scan_inner_loop = Exercise(
    "scan_inner_loop", lambda p, f, s, a, n: inner_loop(p, f, s, a, n), _scan_cases,
    mistakes=[(lambda p, f, s, a, n: inner_loop(p, f, s, a, n - 1),
               "one step short: the loop must run `steps` SGD steps"),
              (lambda p, f, s, a, n: inner_loop(p, f, s, a, 1),
               "only one step was taken; run `steps` of them")],
    extra_check=_uses_a_loop_primitive)


@contextlib.contextmanager
def count_compilations() -> Iterator[list[str]]:
    """``with count_compilations() as events:`` — every XLA compilation inside the block."""
    events = []

    def listener(event, duration, **kwargs):
        if event.startswith("/jax/core/compile/backend_compile"):
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def _alpha_cases(rng):
    params = random_mlp(rng, (1, 40, 40, 1), scale=0.2)
    support, query = sine_support_query(rng, None, 10, 10)
    return [Case((params, support, query, inner_lr), f"α={inner_lr}")
            for inner_lr in (0.011, 0.021, 0.031)]


def _compiles_once(candidate, cases):
    if not hasattr(candidate, "lower"):
        return ("the values are right, but the function is not jitted: decorate it with "
                "@jax.jit")
    params, support, query, _ = cases[0].args
    candidate(params, support, query, 0.0123)                  # compile (once) here
    with count_compilations() as events:
        for inner_lr in (0.0234, 0.0345, 0.0456):
            jax.block_until_ready(candidate(params, support, query, inner_lr))
    if events:
        return (f"{len(events)} new compilations for 3 new values of α: is inner_lr a "
                f"static argument? Pass it as a traced one (leave it out of "
                f"static_argnames), so one program serves every α")
    return None


check_compiles_once = Exercise(
    "adapted_query_loss", lambda p, s, q, a: task_loss(p, sine_loss, s, q, a, 1), _alpha_cases,
    mistakes=[(lambda p, s, q, a: sine_loss(p, q),
               "that is the query loss at θ: adapt first (one SGD step on the support set)")],
    extra_check=_compiles_once)
