"""Chapter 8's exercises: Meta-SGD's inner step, ANIL's head-only step, and iMAML's implicit
meta-gradient with a dense Hessian."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..family import last_layer
from ..maml import inner_loop, sgd_step
from ..sinusoid import sine_loss
from .harness import Case, Exercise, random_like, random_mlp, sine_support_query


def _rates_cases(rng):
    cases = []
    for shots, scale in ((5, 0.01), (10, 0.03)):
        params = random_mlp(rng, (1, 12, 12, 1), scale=0.4)
        rates = jax.tree.map(lambda r: scale * jnp.abs(r), random_like(rng, params))
        support, _ = sine_support_query(rng, None, shots, 1)
        cases.append(Case((params, sine_loss, support, rates), f"K={shots}, rates ~{scale}"))
    return cases


def _metasgd_step(params, loss_fn, support, rates):
    return sgd_step(params, loss_fn, support, rates)[0]


def _mean_rate_step(params, loss_fn, support, rates):
    mean = jnp.mean(ravel_pytree(rates)[0])
    return sgd_step(params, loss_fn, support, mean)[0]


def _ascent_step(params, loss_fn, support, rates):
    grads = jax.grad(loss_fn)(params, support)
    return jax.tree.map(lambda p, g, r: p + r * g, params, grads, rates)


check_metasgd_step = Exercise(
    "metasgd_step", _metasgd_step, _rates_cases,
    mistakes=[(_mean_rate_step, "you used one rate for every entry (their mean); Meta-SGD "
                                "multiplies each gradient entry by its own rate: α ∘ ∇L"),
              (_ascent_step, "the sign is flipped: θ' = θ − α ∘ ∇L_support(θ)"),
              (lambda p, f, s, r: p, "that is θ itself; take one step")])


def _head_cases(rng):
    cases = []
    for shots, inner_lr in ((5, 0.05), (10, 0.02)):
        params = random_mlp(rng, (1, 12, 12, 1), scale=0.4)
        support, _ = sine_support_query(rng, None, shots, 1)
        cases.append(Case((params, sine_loss, support, inner_lr), f"K={shots}, α={inner_lr}"))
    return cases


def _head_step(params, loss_fn, support, inner_lr):
    return inner_loop(params, loss_fn, support, inner_lr, 1, adapt=last_layer(params))


def _all_step(params, loss_fn, support, inner_lr):
    return inner_loop(params, loss_fn, support, inner_lr, 1)


def _body_step(params, loss_fn, support, inner_lr):
    body_only = [True] * (len(params) - 1) + [False]
    return inner_loop(params, loss_fn, support, inner_lr, 1, adapt=body_only)


check_head_only_step = Exercise(
    "head_only_step", _head_step, _head_cases,
    mistakes=[(_all_step, "every layer moved: that is MAML's step; ANIL moves only the last "
                          "layer (the head) and keeps the body at θ"),
              (_body_step, "the body moved and the head stayed: it is the other way round")])


def _implicit_cases(rng):
    cases = []
    for hidden, reg in ((4, 2.0), (6, 0.5)):
        phi = random_mlp(rng, (1, hidden, 1), scale=0.6)
        support, query = sine_support_query(rng, None, 8, 8)
        cases.append(Case((phi, sine_loss, support, query, reg), f"{hidden} hidden units, λ={reg}"))
    return cases


def _implicit(phi, loss_fn, support, query, reg, scale=None, solve=True):
    flat_phi, unravel = ravel_pytree(phi)
    g_query = ravel_pytree(jax.grad(loss_fn)(phi, query))[0]
    if not solve:
        return phi if scale == "phi" else unravel(g_query)
    hessian = jax.hessian(lambda f: loss_fn(unravel(f), support))(flat_phi)
    system = np.eye(flat_phi.size) + hessian / (reg if scale is None else scale)
    return unravel(jnp.asarray(np.linalg.solve(np.asarray(system, np.float64),
                                               np.asarray(g_query, np.float64)), jnp.float32))


def _close(got, want):
    from .harness import tree_difference
    return tree_difference(got, want, rtol=2e-3, atol=1e-4)


check_implicit_gradient = Exercise(
    "implicit_gradient", _implicit, _implicit_cases, compare=_close,
    mistakes=[(lambda *a: _implicit(*a, solve=False),
               "that is ∇L_query(φ) itself, the first-order answer; solve (I + H/λ) x = "
               "∇L_query(φ), H the support loss's Hessian at φ"),
              (lambda *a: _implicit(*a, scale=1.0),
               "you solved (I + H) x = g; divide the Hessian by λ: (I + H/λ) x = g")])
