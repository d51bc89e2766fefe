# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 3 — solutions to the exercises
#
# One way to write each function; the `check_…` call under it runs it on fresh
# inputs against the reference. Try the exercises in
# [the chapter](../03_maml_sinusoid.ipynb) before reading these.
#
# **1. One loss per task, with `vmap`.** θ is shared (not mapped); the tasks' support
# and query sets are mapped along their leading axis.

# %% tags=["exercise"]
import jax

from minimaml import maml
from minimaml.exercises.maml_sinusoid import check_task_losses

def task_losses(params, loss_fn, support, query, inner_lr):
    """Per task: the query loss after one SGD step on its support set; shape (tasks,)."""
    def one_task(task_support, task_query):
        adapted = maml.inner_loop(params, loss_fn, task_support, inner_lr, 1)
        return loss_fn(adapted, task_query)
    return jax.vmap(one_task)(support, query)

check_task_losses(task_losses)

# %% [markdown]
# **2. A meta-test curve with its 95% confidence interval.** One row per task, one
# column per step; the CI half-width of a mean over n tasks is 1.96·std/√n.

# %% tags=["exercise"]
import jax
import numpy as np

from minimaml import maml
from minimaml.exercises.maml_sinusoid import check_meta_test_curve

def meta_test_curve(params, loss_fn, support, query, inner_lr, steps):
    """(mean, ci95) over tasks of the query loss after 0..steps SGD steps; each (steps + 1,)."""
    def one_task(task_support, task_query):
        _, trajectory = maml.inner_loop(params, loss_fn, task_support, inner_lr, steps,
                                        trajectory=True)
        return jax.vmap(loss_fn, in_axes=(0, None))(trajectory.params, task_query)
    curves = np.asarray(jax.vmap(one_task)(support, query))          # (tasks, steps + 1)
    return curves.mean(axis=0), 1.96 * curves.std(axis=0) / np.sqrt(len(curves))

check_meta_test_curve(meta_test_curve)

# %% [markdown]
# **3. The best single function.** E[A·sin(x − φ)] = E[A]·E[sin(x − φ)]; averaging over
# φ ∈ [0, π] gives (1/π)[cos(x − φ)] from 0 to π = −(2/π)·cos x, and E[A] = (0.1 + 5)/2.

# %% tags=["exercise"]
import jax.numpy as jnp

from minimaml.exercises.maml_sinusoid import check_best_single_function

def best_single_function(x):
    """E over p(T) of A·sin(x − φ): the one prediction with the least MSE over all tasks."""
    mean_amplitude = (0.1 + 5.0) / 2
    return -2 / jnp.pi * mean_amplitude * jnp.cos(x)

check_best_single_function(best_single_function)
