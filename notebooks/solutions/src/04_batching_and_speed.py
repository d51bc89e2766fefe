# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 4 — solutions to the exercises
#
# One way to write each function; the `check_…` call under it runs it on fresh
# inputs against the reference. Try the exercises in
# [the chapter](../04_batching_and_speed.ipynb) before reading these.
#
# **1. The inner loop as one `lax.scan`.** The carry is the params; nothing is stacked.

# %% tags=["exercise"]
import jax

from minimaml.exercises.batching import check_scan_inner_loop

def scan_inner_loop(params, loss_fn, support, inner_lr, steps):
    """θ after `steps` SGD steps on the support set, with jax.lax.scan (no Python loop)."""
    def body(p, _):
        grads = jax.grad(loss_fn)(p, support)
        return jax.tree.map(lambda a, g: a - inner_lr * g, p, grads), None
    return jax.lax.scan(body, params, length=steps)[0]

check_scan_inner_loop(scan_inner_loop)

# %% [markdown]
# **2. A jitted loss that compiles once for every α.** α stays a traced argument; only
# what changes the program's structure would be static.

# %% tags=["exercise"]
import jax

from minimaml import maml, sinusoid
from minimaml.exercises.batching import check_compiles_once

@jax.jit
def adapted_query_loss(params, support, query, inner_lr):
    """Query loss after one SGD step of size inner_lr on the support set (one task)."""
    return maml.task_loss(params, sinusoid.sine_loss, support, query, inner_lr)

check_compiles_once(adapted_query_loss)
