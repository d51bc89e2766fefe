# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 5 — solutions to the exercises
#
# One way to write each function; the `check_…` call under it runs it on fresh
# inputs against the reference. Try the exercises in
# [the chapter](../05_first_vs_second_order.ipynb) before reading these.
#
# **1. The first-order meta-gradient of a meta-batch.** Per task, the gradient of the
# query loss at the adapted params; then the mean over tasks.

# %% tags=["exercise"]
import jax
import jax.numpy as jnp

from minimaml import maml
from minimaml.exercises.first_order import check_first_order_meta_gradient

def first_order_meta_gradient(params, loss_fn, support, query, inner_lr):
    """Mean over tasks of ∇L_query(θ'_i), θ'_i = θ − α∇L_support_i(θ)."""
    def one_task(task_support, task_query):
        adapted = maml.inner_loop(params, loss_fn, task_support, inner_lr, 1)
        return jax.grad(loss_fn)(adapted, task_query)
    per_task = jax.vmap(one_task)(support, query)
    return jax.tree.map(lambda g: jnp.mean(g, axis=0), per_task)

check_first_order_meta_gradient(first_order_meta_gradient)

# %% [markdown]
# **2. The angle between two gradients.** Flatten each pytree into one vector first.

# %% tags=["exercise"]
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from minimaml.exercises.first_order import check_gradient_angle

def gradient_angle(a, b):
    """The angle in degrees between pytrees a and b, each seen as one long vector."""
    a, b = ravel_pytree(a)[0], ravel_pytree(b)[0]
    cosine = a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b))
    return jnp.degrees(jnp.arccos(jnp.clip(cosine, -1.0, 1.0)))

check_gradient_angle(gradient_angle)

# %% [markdown]
# **3. Reptile's direction.** φ is θ after `steps` SGD steps on the task's data; the
# direction θ − φ plays the role of a gradient.

# %% tags=["exercise"]
import jax

from minimaml import maml
from minimaml.exercises.first_order import check_reptile_direction

def reptile_direction(params, loss_fn, data, inner_lr, steps):
    """θ − φ, where φ is θ after `steps` SGD steps of size inner_lr on data."""
    phi = maml.inner_loop(params, loss_fn, data, inner_lr, steps)
    return jax.tree.map(lambda t, f: t - f, params, phi)

check_reptile_direction(reptile_direction)
