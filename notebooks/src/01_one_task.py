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

# %% tags=["parameters"]
seed = 0            # same seed, same numbers (on one machine)
amplitude = 4.0     # A of our example task
phase = 1.0         # φ of our example task
fit_steps = 5000    # gradient-descent steps for the long fits of section 4
inner_lr = 0.01     # α: the step size of plain gradient descent
many_points = 200   # the "lots of data" comparison
results_path = None # the tests set this to collect a JSON summary

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from minimaml import maml, sinusoid
from minimaml.nets import mlp_apply

plt.rcParams.update({"figure.dpi": 75, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## 1. A task is a function and some samples of it
#
# The paper's first benchmark (Section 5.1) is regression on sine waves. The
# **task distribution** p(T) draws an amplitude A ∈ [0.1, 5.0] and a phase φ ∈ [0, π];
# the task T is then "predict y = A·sin(x − φ) for x ∈ [−5, 5]" (the paper gives the
# ranges; the form A·sin(x − φ) is the official code's, in its `data_generator.py`).
# Every task is a different function, but they all share a shape.
#
# A task comes with two small data sets:
#
# | paper | code | what it is |
# |---|---|---|
# | K ("K-shot") | `support_size` | how many labelled points we may learn from |
# | support set (the K datapoints D of the paper's Algorithm 2) | `support_x, support_y`, shapes `(K, 1)` | the K points we fine-tune on |
# | query set (D′ᵢ in Algorithm 2) | `query_x, query_y`, shapes `(Q, 1)` | fresh points of the *same* task, never fitted: they measure the adapted network (and, in meta-training, give line 10 of Algorithm 2 its loss) |
# | L_T(f_θ) | `sinusoid.sine_loss(params, (x, y))` | mean squared error of the network on a set (the paper's Eq. 2 writes a sum over the points; its Section 5.1 calls the sinusoid loss the mean-squared error and pairs it with α = 0.01, and the official code's `mse` in `utils.py` takes the mean, as minimaml does — though that code's sinusoid command runs with its default α = 0.001, see chapter 3) |
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

def support_set(pool_x, pool_y, k):
    """The K-shot support set: the first k points of the pool, shapes (k, 1) and (k, 1)."""
    return pool_x[:k], pool_y[:k]

fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(query_x[:, 0], query_y[:, 0], "k-", lw=1, label=f"y = {amplitude}·sin(x − {phase})")
for k, marker in ((10, "o"), (5, "^")):
    sx, sy = support_set(pool_x, pool_y, k)
    ax.plot(sx[:, 0], sy[:, 0], marker, ms=9 if k == 5 else 12, mfc="none" if k == 10 else None,
            label=f"K = {k} support points")
ax.set(xlabel="x", ylabel="y", title="One task from p(T)")
ax.legend(fontsize=8, loc="lower left")
plt.show()

# %% [markdown]
# ## 2. The network and the loss
#
# The paper's regressor is a small MLP, 1 → 40 → 40 → 1 with ReLU (Section 5.1). Its
# weights start as tiny random numbers (truncated normal, std 0.01, as in the official
# code's `construct_fc_weights` in `maml.py`; biases zero), so a fresh network's output
# is tiny everywhere:

# %%
params = sinusoid.init_params(init_key)
fresh_mse = float(sinusoid.sine_loss(params, query))
fresh_output = float(jnp.max(jnp.abs(mlp_apply(params, query_x))))
print("layer shapes:", [(layer["w"].shape, layer["b"].shape) for layer in params])
print("number of weights:", sum(x.size for x in jax.tree.leaves(params)))
print(f"largest |output| of the fresh network on x ∈ [−5, 5]: {fresh_output:.1e}")
print(f"its loss on the query set: {fresh_mse:.3f} "
      f"(the mean of y² there: {float(jnp.mean(query_y ** 2)):.3f})")

# %% [markdown]
# ## 3. Plain gradient descent on K points
#
# Learning one task is ordinary supervised learning: repeat
# θ ← θ − α ∇_θ L_support(θ). Written out in JAX it is three lines: a gradient, an
# update of every leaf of the parameter pytree, a loop.

# %%
@jax.jit
def gd_step(params, support, inner_lr):
    """One gradient-descent step on the support loss: θ − α ∇L_support(θ)."""
    grads = jax.grad(sinusoid.sine_loss)(params, support)
    return jax.tree.map(lambda p, g: p - inner_lr * g, params, grads)

support5 = support_set(pool_x, pool_y, 5)
fitted = params
for _ in range(100):
    fitted = gd_step(fitted, support5, inner_lr)
print(f"support loss: {sinusoid.sine_loss(params, support5):.3f} before, "
      f"{sinusoid.sine_loss(fitted, support5):.3f} after 100 steps")

# %% [markdown]
# That loop is exactly what `minimaml.maml.inner_loop` does — it is the *inner loop* of
# MAML — except that it runs the steps inside one `lax.scan` (its body is traced once
# and lowered to a single XLA loop, where a Python loop under `jit` would be unrolled
# step by step: the `jax.lax.scan` documentation) and can return the whole
# trajectory of parameters. We check the two
# agree, then use the library call from here on.

# %%
same = maml.inner_loop(params, sinusoid.sine_loss, support5, inner_lr, 100)
gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in
          zip(jax.tree.leaves(same), jax.tree.leaves(fitted)))
print(f"largest difference between our loop and inner_loop: {gap:.1e}")
assert gap < 1e-5

# %% [markdown]
# ## 4. Train long on K = 5, K = 10 and many points
#
# Now we give gradient descent plenty of time: `fit_steps` steps from the fresh network,
# on K = 5, K = 10, and `many_points` support points. We record the support loss (what
# gradient descent minimises) and the query loss (what we care about) along the way;
# the figure below shows how far each has got by the last step.

# %%
def fit(params, support, query, inner_lr, steps):
    """Support and query loss along `steps` GD steps (about 200 snapshots), and the final params."""
    adapted, traj = maml.inner_loop(params, sinusoid.sine_loss, support, inner_lr, steps,
                                    trajectory=True)
    every = max(1, steps // 200)
    snapshots = jax.tree.map(lambda a: a[::every], traj.params)
    query_curve = jax.vmap(sinusoid.sine_loss, in_axes=(0, None))(snapshots, query)
    return {"steps": np.arange(0, steps + 1, every), "support": np.asarray(traj.losses[::every]),
            "query": np.asarray(query_curve), "params": adapted}

runs = {k: fit(params, support_set(pool_x, pool_y, k), query, inner_lr, fit_steps)
        for k in (5, 10, many_points)}
table = {k: {"support_mse": float(r["support"][-1]), "query_mse": float(r["query"][-1])}
         for k, r in runs.items()}
print(f"{'K':>5} | support MSE | query MSE   (after {fit_steps} steps, α = {inner_lr})")
for k, row in table.items():
    print(f"{k:>5} | {row['support_mse']:11.3f} | {row['query_mse']:9.3f}")

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 3.2), constrained_layout=True)
for ax, (k, run) in zip(axes, runs.items()):
    sx, sy = support_set(pool_x, pool_y, k)
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
# What the table says, in words (computed from it, so it stays true when you change the
# parameters):

# %%
few, ten, lots = table[5], table[10], table[many_points]
start5 = float(runs[5]["support"][0])
display(Markdown(
    f"- **K = 5**: gradient descent does its job on the support set, taking its loss from "
    f"{start5:.2f} to {few['support_mse']:.3f}; but its query loss is {few['query_mse']:.2f}, "
    f"{few['query_mse'] / few['support_mse']:.0f}× the support loss and "
    f"{'higher' if few['query_mse'] > fresh_mse else 'lower'} than the {fresh_mse:.2f} of "
    f"the fresh network, which predicts ≈ 0.\n"
    f"- **K = 10**: support loss {ten['support_mse']:.3f}, query loss {ten['query_mse']:.2f} "
    f"(K = 5: {few['query_mse']:.2f}).\n"
    f"- **{many_points} points**: the very same network, loss and step size reach a query "
    f"loss of {lots['query_mse']:.3f}, {fresh_mse / lots['query_mse']:.0f}× below the fresh "
    f"network's."))

# %% [markdown]
# With five or ten points the fitted curve stays close to its points (the support
# MSEs of the table) and misses the function elsewhere (the figure, and the query
# MSEs); with many points it does not. The network, the loss and the optimiser are the
# same in all three, and the many-point fit shows the network can represent this sine
# wave: the problem is not the model, it is the data.

# %% [markdown]
# ## 5. And with the budget MAML allows?
#
# At meta-test time the paper gives the learner K points and **up to 10 gradient
# steps** (its Fig. 2 shows the fit before any step, after 1 and after 10; its Table 2,
# in Appendix C.1, reports 1, 5 and 10; its Fig. 3 plots the error step by step). MAML's
# steps have the size α it was meta-trained with (the official code's `maml.py` uses
# its one `update_lr` for every inner step, in training and at test). From a fresh
# network ten steps of size α barely move the query loss:

# %%
budget = {}
for k in (5, 10):
    few_steps = maml.inner_loop(params, sinusoid.sine_loss, support_set(pool_x, pool_y, k), inner_lr, 10)
    budget[k] = float(sinusoid.sine_loss(few_steps, query))
    print(f"K = {k:2d}: query MSE {fresh_mse:.3f} before, {budget[k]:.3f} after 10 steps "
          f"({100 * (fresh_mse - budget[k]) / fresh_mse:.0f}% lower)")

# %% [markdown]
# ## 6. Try it live
#
# The playground of chapter 7, on a fresh task. The **random** line is this chapter's
# situation: a fresh network fine-tuning on K points. At α = 0.01 and 10 steps it
# hardly moves (section 5); raise α or the steps and watch it chase the support points
# (section 3 took 100 steps). The **MAML** line is where the course is headed: the
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
# ## Exercises
#
# Each exercise is a function to complete. Replace the `raise NotImplementedError`
# line with your code and run the cell: the `check_…` call runs your function on fresh
# inputs against a reference and says `correct`, or what differs. Solutions:
# `notebooks/solutions/01_one_task.ipynb`.
#
# **1. The inner SGD step by hand.** Return θ − α ∇L_support(θ) for every leaf of the
# parameter pytree, with the `loss_fn` you are given (`jax.grad`, `jax.tree.map`).

# %% tags=["exercise"]
from minimaml.exercises.one_task import check_sgd_step

def sgd_step(params, loss_fn, support, inner_lr):
    """θ − α ∇L(θ) on the support batch, for every leaf of the params pytree."""
    raise NotImplementedError  # your code here

check_sgd_step(sgd_step)

# %% [markdown]
# **2. A fine-tuning curve.** Return the query loss after 0, 1, …, `steps` SGD steps on
# the support set: an array of `steps + 1` numbers, the first one before any step.
# (`maml.inner_loop(..., trajectory=True)` gives every step's params; a loop of your
# `sgd_step` works too.)

# %% tags=["exercise"]
from minimaml.exercises.one_task import check_finetune_curve

def finetune_curve(params, loss_fn, support, query, inner_lr, steps):
    """Query loss after 0..steps SGD steps of size inner_lr on support: shape (steps + 1,)."""
    raise NotImplementedError  # your code here

check_finetune_curve(finetune_curve)

# %% [markdown]
# **To explore** (no check): change `amplitude` and `phase` — is some task easy from a
# fresh network? Raise `inner_lr` to 0.03: does K = 5 generalise better, or fit its
# points faster? Spread the five support points evenly with `jnp.linspace`: how close
# does the fit come to the sine between them, and why?

# %%
from minimaml.runs import write_results
write_results(results_path, fit_steps=fit_steps, inner_lr=inner_lr, converged=table, query_mse_fresh=fresh_mse, fresh_max_output=fresh_output, query_mse_after_10_steps=budget, loop_vs_inner_loop_max_diff=gap)
