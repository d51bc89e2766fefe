# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 1 — solutions to the exercises
#
# One way to write each function; the `check_…` call under it runs it on fresh
# inputs against the reference. Try the exercises in
# [the chapter](../01_one_task.ipynb) before reading these.
#
# **1. The inner SGD step by hand.**

# %% tags=["exercise"]
import jax

from minimaml.exercises.one_task import check_sgd_step

def sgd_step(params, loss_fn, support, inner_lr):
    """θ − α ∇L(θ) on the support batch, for every leaf of the params pytree."""
    grads = jax.grad(loss_fn)(params, support)
    return jax.tree.map(lambda p, g: p - inner_lr * g, params, grads)

check_sgd_step(sgd_step)

# %% [markdown]
# **2. A fine-tuning curve.** `inner_loop(..., trajectory=True)` returns the params
# after every step (a leading axis of `steps + 1`); `jax.vmap` measures them all at once.

# %% tags=["exercise"]
import jax

from minimaml import maml
from minimaml.exercises.one_task import check_finetune_curve

def finetune_curve(params, loss_fn, support, query, inner_lr, steps):
    """Query loss after 0..steps SGD steps of size inner_lr on support: shape (steps + 1,)."""
    _, trajectory = maml.inner_loop(params, loss_fn, support, inner_lr, steps, trajectory=True)
    return jax.vmap(loss_fn, in_axes=(0, None))(trajectory.params, query)

check_finetune_curve(finetune_curve)
