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
# [the chapter](../06_omniglot.ipynb) before reading these.
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

# %% [markdown]
# **Nearest class mean.** The mean support feature of each class (a one-hot matrix
# averages them in one product), then the squared distance from every query to every
# mean; the nearest wins.

# %% tags=["exercise"]
import jax
import jax.numpy as jnp

from minimaml.exercises.omniglot import check_nearest_class_mean

def nearest_class_mean(support_features, support_y, query_features, ways):
    """The label of the nearest class mean for each query: integers, shape (Q,)."""
    onehot = jax.nn.one_hot(support_y, ways)                          # (N·K, N)
    means = onehot.T @ support_features / onehot.sum(0)[:, None]      # (N, F)
    distances = ((query_features[:, None] - means[None]) ** 2).sum(-1)  # (Q, N)
    return jnp.argmin(distances, axis=1)

check_nearest_class_mean(nearest_class_mean)
