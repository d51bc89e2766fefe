# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 2 — solutions to the exercises
#
# One way to write each function; the `check_…` call under it runs it on fresh
# inputs against the reference. Try the exercises in
# [the chapter](../02_grad_of_grad.ipynb) before reading these.
#
# **1. A Hessian-vector product as `jvp` of `grad`.** The derivative of ∇f at θ in
# the direction v is H v (forward-over-reverse).

# %% tags=["exercise"]
import jax

from minimaml.exercises.grad_of_grad import check_hvp

def hvp(f, theta, v):
    """H v with H = ∇²f(θ), for pytrees θ and v of the same structure, without forming H."""
    return jax.jvp(jax.grad(f), (theta,), (v,))[1]

check_hvp(hvp)

# %% [markdown]
# **2. The Gauss–Newton product.** `jax.jvp` gives J v (one number per input point);
# `jax.vjp` multiplies by Jᵀ and brings it back to parameter space.

# %% tags=["exercise"]
import jax

from minimaml.exercises.grad_of_grad import check_gauss_newton_product

def gauss_newton_product(params, apply_fn, x, v):
    """(2/K)·Jᵀ(J v), J the Jacobian of apply_fn(params, x) (K outputs) with respect to params."""
    outputs, jv = jax.jvp(lambda p: apply_fn(p, x), (params,), (v,))
    _, pullback = jax.vjp(lambda p: apply_fn(p, x), params)
    return pullback(2.0 / outputs.size * jv)[0]

check_gauss_newton_product(gauss_newton_product)

# %% [markdown]
# **3. The meta-gradient through two inner steps.** Take both steps, then walk back:
# the Hessian at θ' acts first, the one at θ last.

# %% tags=["exercise"]
import jax

from minimaml.exercises.grad_of_grad import check_two_step_meta_gradient

def two_step_meta_gradient(params, loss_fn, support, query, inner_lr):
    """∇_θ L_query(θ'') for θ' = θ − α∇L_support(θ), θ'' = θ' − α∇L_support(θ')."""
    def step(p):
        return jax.tree.map(lambda a, g: a - inner_lr * g, p, jax.grad(loss_fn)(p, support))

    def hvp(point, v):
        return jax.jvp(jax.grad(lambda t: loss_fn(t, support)), (point,), (v,))[1]

    theta1 = step(params)
    theta2 = step(theta1)
    vector = jax.grad(loss_fn)(theta2, query)                          # g''
    for point in (theta1, params):                                      # (I − αH(θ'))·, then (I − αH(θ))·
        vector = jax.tree.map(lambda g, h: g - inner_lr * h, vector, hvp(point, vector))
    return vector

check_two_step_meta_gradient(two_step_meta_gradient)
