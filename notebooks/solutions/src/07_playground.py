# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 7 — solutions to the exercises
#
# One way to write each function; the `check_…` call under it runs it on fresh
# inputs against the reference. Try the exercises in
# [the chapter](../07_playground.ipynb) before reading these.
#
# **1. The largest stable step size.** Power iteration: multiply a vector by H again
# and again (with Hessian-vector products) and it turns towards the eigenvector of the
# eigenvalue of largest size; its growth per multiplication is |λ_max|.

# %% tags=["exercise"]
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from minimaml.exercises.playground import check_stability_limit

def stability_limit(params, loss_fn, support, iterations=100):
    """2/λ_max, λ_max the largest |eigenvalue| of the Hessian of the support loss at params."""
    flat, unravel = ravel_pytree(params)
    hvp = jax.jit(lambda v: ravel_pytree(jax.jvp(jax.grad(lambda p: loss_fn(p, support)),
                                                 (params,), (unravel(v),))[1])[0])
    v = jax.random.normal(jax.random.key(0), flat.shape)
    for _ in range(iterations):
        v = hvp(v / jnp.linalg.norm(v))       # → H u for the current unit vector u
    return 2.0 / float(jnp.linalg.norm(v))

check_stability_limit(stability_limit)

# %% [markdown]
# **2. What the widget draws.** Fine-tune, then predict.

# %% tags=["exercise"]
from minimaml import maml, sinusoid
from minimaml.nets import mlp_apply
from minimaml.exercises.playground import check_adapted_prediction

def adapted_prediction(params, support, x, inner_lr, steps):
    """The network's prediction on x after `steps` SGD steps of size inner_lr on support."""
    adapted = maml.inner_loop(params, sinusoid.sine_loss, support, inner_lr, steps)
    return mlp_apply(adapted, x)

check_adapted_prediction(adapted_prediction)
