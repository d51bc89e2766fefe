# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 1 — One task, a few points
#
# **What you will learn.** What a *task* is in the MAML paper (Finn, Abbeel & Levine,
# 2017), what *K-shot*, *support set* and *query set* mean, and why a freshly
# initialised network trained with plain gradient descent on K = 5 or 10 points does
# not learn the function behind them — while the same network, given many points,
# does. That failure is the question MAML answers.
#
# Everything here runs on a laptop CPU in a few seconds.

# %% tags=["parameters"]
seed = 0            # same seed, same numbers
amplitude = 4.0     # A of our example task
phase = 1.0         # φ of our example task
fit_steps = 5000    # gradient-descent steps when we train "to convergence"
inner_lr = 0.01     # α: the step size of plain gradient descent
many_points = 200   # the "lots of data" comparison
results_path = None # the tests set this to collect a JSON summary

# %%
import json
import pathlib

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from minimaml import maml, sinusoid
from minimaml.nets import mlp_apply

plt.rcParams.update({"figure.dpi": 75, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## 1. A task is a function and some samples of it
#
# The paper's first benchmark (Section 5.1) is regression on sine waves. The
# **task distribution** p(T) draws an amplitude A ∈ [0.1, 5.0] and a phase φ ∈ [0, π];
# the task T is then "predict y = A·sin(x − φ) for x ∈ [−5, 5]". Every task is a
# different function, but they all share a shape.
#
# A task comes with two small data sets:
#
# | paper | code | what it is |
# |---|---|---|
# | K ("K-shot") | `support_size` | how many labelled points we may learn from |
# | support set (training data of T) | `support_x, support_y`, shapes `(K, 1)` | the K points we fine-tune on |
# | query set (test data of T) | `query_x, query_y`, shapes `(Q, 1)` | fresh points of the *same* task, only to measure |
# | L_T(f_θ) | `sinusoid.sine_loss(params, (x, y))` | mean squared error of the network on a set |
# | θ | `params` | the network's weights: a list of `{"w", "b"}` dicts |
#
# `sinusoid.sample_tasks(key, num_tasks, support_size, query_size)` draws whole batches
# of such tasks. Here we build one by hand so that every part is visible.

# %%
key = jax.random.key(seed)
points_key, init_key = jax.random.split(key)

# Many inputs from U[-5, 5]; a K-shot support set is simply the first K of them.
pool_x = jax.random.uniform(points_key, (many_points, 1), minval=-5.0, maxval=5.0)
pool_y = sinusoid.sine(pool_x, amplitude, phase)

# The query set: a dense grid over the whole input range, so "generalises" means
# "is right everywhere", not just near the points we saw.
query_x = jnp.linspace(-5.0, 5.0, 200)[:, None]
query_y = sinusoid.sine(query_x, amplitude, phase)
query = (query_x, query_y)

def support_set(k):
    """The K-shot support set: (support_x: (K, 1), support_y: (K, 1))."""
    return pool_x[:k], pool_y[:k]

fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(query_x[:, 0], query_y[:, 0], "k-", lw=1, label=f"y = {amplitude}·sin(x − {phase})")
for k, marker in ((10, "o"), (5, "^")):
    sx, sy = support_set(k)
    ax.plot(sx[:, 0], sy[:, 0], marker, ms=9 if k == 5 else 12, mfc="none" if k == 10 else None,
            label=f"K = {k} support points")
ax.set(xlabel="x", ylabel="y", title="One task from p(T)")
ax.legend(fontsize=8, loc="lower left")
plt.show()

# %% [markdown]
# ## 2. The network and the loss
#
# The paper's regressor is a small MLP, 1 → 40 → 40 → 1 with ReLU. Its weights start
# as tiny random numbers (truncated normal, std 0.01, as in the official code), so a
# fresh network predicts ≈ 0 everywhere.

# %%
params = sinusoid.init_params(init_key)
print("layer shapes:", [(layer["w"].shape, layer["b"].shape) for layer in params])
print("number of weights:", sum(x.size for x in jax.tree.leaves(params)))
print(f"loss of the fresh network on the query set: {sinusoid.sine_loss(params, query):.3f}")

# %% [markdown]
# ## 3. Plain gradient descent on K points
#
# Learning one task is ordinary supervised learning: repeat
# θ ← θ − α ∇_θ L_support(θ). Written out in JAX it is three lines: a gradient, an
# update of every leaf of the parameter pytree, a loop.

# %%
@jax.jit
def gd_step(params, support):
    grads = jax.grad(sinusoid.sine_loss)(params, support)
    return jax.tree.map(lambda p, g: p - inner_lr * g, params, grads)

fitted = params
for _ in range(100):
    fitted = gd_step(fitted, support_set(5))
print(f"after 100 steps: support loss {sinusoid.sine_loss(fitted, support_set(5)):.3f}")

# %% [markdown]
# That loop is exactly what `minimaml.maml.inner_loop` does — it is the *inner loop* of
# MAML — except that it runs the steps inside one `lax.scan` (compiled once, fast for
# thousands of steps) and can return the whole trajectory of parameters. We check the
# two agree, then use the library call from here on.

# %%
same = maml.inner_loop(params, sinusoid.sine_loss, support_set(5), inner_lr, 100)
gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in
          zip(jax.tree.leaves(same), jax.tree.leaves(fitted)))
print(f"largest difference between our loop and inner_loop: {gap:.1e}")
assert gap < 1e-5

# %% [markdown]
# ## 4. Train to convergence on K = 5, K = 10 and many points
#
# Now we give gradient descent every chance: `fit_steps` steps from the fresh network,
# on K = 5, K = 10, and `many_points` support points. We record the support loss (what
# gradient descent minimises) and the query loss (what we care about) at every step.

# %%
def fit(k, steps):
    """Query and support loss after 0..steps GD steps on K=k points, and the final params."""
    support = support_set(k)
    adapted, traj = maml.inner_loop(params, sinusoid.sine_loss, support, inner_lr, steps,
                                    trajectory=True)
    every = max(1, steps // 200)           # evaluate ~200 snapshots of the trajectory
    snapshots = jax.tree.map(lambda a: a[::every], traj.params)
    query_curve = jax.vmap(sinusoid.sine_loss, in_axes=(0, None))(snapshots, query)
    return {"steps": np.arange(0, steps + 1, every), "support": np.asarray(traj.losses[::every]),
            "query": np.asarray(query_curve), "params": adapted}

runs = {k: fit(k, fit_steps) for k in (5, 10, many_points)}
table = {k: {"support_mse": float(r["support"][-1]), "query_mse": float(r["query"][-1])}
         for k, r in runs.items()}
print(f"{'K':>5} | support MSE | query MSE   (after {fit_steps} steps, α = {inner_lr})")
for k, row in table.items():
    print(f"{k:>5} | {row['support_mse']:11.3f} | {row['query_mse']:9.3f}")

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 3.2), constrained_layout=True)
for ax, (k, run) in zip(axes, runs.items()):
    sx, sy = support_set(k)
    ax.plot(query_x[:, 0], query_y[:, 0], "k-", lw=1, label="true function")
    ax.plot(query_x[:, 0], mlp_apply(run["params"], query_x)[:, 0], "C3--",
            label=f"after {fit_steps} steps")
    ax.plot(sx[:, 0], sy[:, 0], "k^" if k < 50 else "k.", ms=8 if k < 50 else 3,
            label="support points")
    ax.set(title=f"K = {k}", ylim=(-6, 6), xlabel="x")
    ax.legend(fontsize=7, loc="lower left")
ax = axes[3]
for (k, run), color in zip(runs.items(), ("C0", "C1", "C2")):
    ax.plot(run["steps"], run["support"], color=color, ls=":", label=f"K={k} support")
    ax.plot(run["steps"], run["query"], color=color, label=f"K={k} query")
ax.set(yscale="log", xlabel="gradient steps", ylabel="MSE", title="support vs query loss")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# With K = 5 gradient descent does its job — the support loss falls towards zero — but
# the curve it finds passes through the five points and is wrong almost everywhere
# else: the query loss stays high. K = 10 fares no better. With `many_points`
# points the very same network, loss and optimiser recover the sine wave: the problem
# is not the model, it is the data.
#
# ## 5. And with the budget MAML allows?
#
# At meta-test time the paper gives the learner K points and **1 to 10 gradient steps**
# of size α. From a fresh network that budget does essentially nothing:

# %%
budget = {}
for k in (5, 10):
    few = maml.inner_loop(params, sinusoid.sine_loss, support_set(k), inner_lr, 10)
    budget[k] = float(sinusoid.sine_loss(few, query))
    print(f"K = {k:2d}: query MSE {float(sinusoid.sine_loss(params, query)):.3f} before, "
          f"{budget[k]:.3f} after 10 steps")

# %% [markdown]
# ## 6. Watch it live
#
# The playground of chapter 7, on a fresh task. The **random** line is this chapter's
# situation: a fresh network fine-tuning on K points. Move K, α and the steps and watch
# it chase the support points. The **MAML** line is where the course is headed: the
# same network and the same SGD steps, from a meta-learned start (the package ships
# one; chapter 3 trains your own). It needs a live kernel; a saved copy shows a still
# picture.

# %%
from minimaml.widgets import playground

playground(seed=1, shots=5, steps=10)

# %% [markdown]
# ## The question MAML answers
#
# A person shown five points of a sine wave would guess the rest, because they have
# seen many sine waves before. Our network has seen none. MAML's idea: use many
# *other* tasks from p(T) to find an initialisation θ such that **a few gradient steps
# on K points of a new task** already give a good fit — i.e. make the K = 5, 10-step
# number above small. Chapter 2 shows the gradient that makes this trainable,
# chapter 3 trains it.
#
# ## Try this
#
# - Change `amplitude` and `phase` in the parameters cell and rerun: is some task easy
#   from a fresh network?
# - Raise `inner_lr` to 0.03 or 0.1. Does K = 5 generalise better, or just overfit faster?
# - Spread the K = 5 support points evenly over [−5, 5] instead of at random
#   (`jnp.linspace`). Does that help, and why can it not be enough?
# - Replace `sinusoid.init_params` with a wider network, `mlp_init(key, (1, 200, 200, 1))`.

# %%
summary = {
    "fit_steps": fit_steps,
    "inner_lr": inner_lr,
    "converged": {str(k): v for k, v in table.items()},
    "query_mse_fresh": float(sinusoid.sine_loss(params, query)),
    "query_mse_after_10_steps": {str(k): v for k, v in budget.items()},
    "loop_vs_inner_loop_max_diff": gap,
}
if results_path:
    pathlib.Path(results_path).write_text(json.dumps(summary, indent=1))
