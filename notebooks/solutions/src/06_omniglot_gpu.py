# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 6 — solutions to the exercises
#
# One way to write each function; the `check_…` call under it runs it on fresh
# inputs against the reference. Try the exercises in
# [the chapter](../06_omniglot_gpu.ipynb) before reading these.
#
# **The N-way label permutation.** One random permutation π of 0..N−1 per task,
# applied to the support and the query labels alike (a label must name the same
# character in both).

# %% tags=["exercise"]
import jax

from minimaml.exercises.omniglot import check_permute_labels

def permute_labels(key, support_y, query_y, ways):
    """(π[support_y], π[query_y]) for one random permutation π of 0..ways−1 drawn from key."""
    pi = jax.random.permutation(key, ways)
    return pi[support_y], pi[query_y]

check_permute_labels(permute_labels)
