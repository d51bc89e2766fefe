# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()


# %% [markdown]
# # Chapter 8 — solutions to the exercises
#
# One way to write each function; the `check_…` call under it runs it on fresh
# inputs against the reference. Try the exercises in
# [the chapter](../08_beyond_maml.ipynb) before reading these.
#
# **1. Meta-SGD's inner step.** The gradient, then one rate per entry: `jax.tree.map`
# over three pytrees of the same structure.

# %% tags=["exercise"]
import jax

from minimaml.exercises.family import check_metasgd_step

def metasgd_step(params, loss_fn, support, rates):
    """θ − α ∘ ∇L_support(θ), entry by entry."""
    grads = jax.grad(loss_fn)(params, support)
    return jax.tree.map(lambda p, g, r: p - r * g, params, grads, rates)

check_metasgd_step(metasgd_step)

# %% [markdown]
# **2. ANIL's inner step.** Differentiate with respect to the head only (the body
# enters as a constant), then replace the head.

# %% tags=["exercise"]
import jax

from minimaml.exercises.family import check_head_only_step

def head_only_step(params, loss_fn, support, inner_lr):
    """params with only params[-1] moved by one SGD step on the support loss."""
    body, head = params[:-1], params[-1]
    head_grad = jax.grad(lambda h: loss_fn(body + [h], support))(head)
    return body + [jax.tree.map(lambda p, g: p - inner_lr * g, head, head_grad)]

check_head_only_step(head_only_step)

# %% [markdown]
# **3. iMAML's implicit meta-gradient, densely.** Flatten φ, build the Hessian of the
# support loss in the flat vector, solve the linear system, unflatten.

# %% tags=["exercise"]
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from minimaml.exercises.family import check_implicit_gradient

def implicit_gradient(phi, loss_fn, support, query, reg):
    """(I + H/reg)⁻¹ ∇L_query(φ), H = ∇²L_support(φ), as a pytree like φ."""
    flat_phi, unravel = ravel_pytree(phi)
    hessian = jax.hessian(lambda f: loss_fn(unravel(f), support))(flat_phi)
    g_query = ravel_pytree(jax.grad(loss_fn)(phi, query))[0]
    return unravel(jnp.linalg.solve(jnp.eye(flat_phi.size) + hessian / reg, g_query))

check_implicit_gradient(implicit_gradient)
