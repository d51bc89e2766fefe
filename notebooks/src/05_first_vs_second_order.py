# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 5 — First order or second order? Speed, accuracy and memory
#
# **What you will learn.** How first-order MAML (FOMAML, the paper's Section 5.2) and
# Reptile, two relatives of MAML that use no second derivatives, compare with full
# second-order MAML on the sinusoid benchmark:
# final meta-test error, time per meta-step, and the angle between the second- and
# first-order meta-gradients *during* training. Then the memory bill of many inner
# steps, and `jax.checkpoint` (rematerialisation) as the remedy — measured, not
# assumed.

# %% tags=["parameters"]
meta_steps = 70_000     # per method; the official code's sinusoid budget
steps_per_call = 1000   # meta-steps per jitted lax.scan chunk; the angle is probed once per chunk
meta_batch = 25
support_size = 10
inner_lr = 0.01         # α
meta_lr = 1e-3          # β
reptile_steps = 5       # Reptile's inner SGD steps
reptile_inner_lr = 0.02
eval_tasks = 600
memory_steps = [1, 2, 5, 10, 20, 50, 100]   # inner steps for the memory measurement
seed = 0
results_path = None

# %%
import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from jax.flatten_util import ravel_pytree

from minimaml import family, maml, sinusoid, train

plt.rcParams.update({"figure.dpi": 75, "axes.grid": True, "grid.alpha": 0.3})
loss_fn = sinusoid.sine_loss
config = sinusoid.Config(meta_steps=meta_steps, meta_batch=meta_batch, support_size=support_size,
                         query_size=support_size, inner_lr=inner_lr, meta_lr=meta_lr,
                         eval_tasks=eval_tasks, seed=seed)
init_key, train_key, probe_key = jax.random.split(jax.random.key(seed), 3)
params0 = sinusoid.init_params(init_key)
sample = sinusoid.task_sampler(meta_batch, support_size, support_size)

# %% [markdown]
# ## 1. Three meta-gradients
#
# For one inner step (chapter 2), with θ' the adapted parameters and g' = ∇L_query(θ'):
#
# | method | meta-gradient for one task | in code |
# |---|---|---|
# | MAML | (I − α∇²L_support(θ)) g' | `maml_objective(..., first_order=False)` |
# | first-order MAML | g' (the Hessian term dropped) | `maml_objective(..., first_order=True)` |
# | Reptile (Nichol et al., 2018) | θ − φ, where φ = θ after k SGD steps on the task | `family.ReptileObjective` (below) |
#
# Reptile does not differentiate through its inner loop: it moves θ towards the weights
# each task ends up with. We can still hand it to the same optax training loop by
# writing an objective whose gradient *is* θ − φ: ½‖θ − stop_gradient(φ)‖².
# Reptile has no support/query split: its inner steps train on the task's data (the
# Reptile paper samples minibatches of it), so here each step uses support and query
# together, one full batch. That objective is in the library,
# `minimaml/family/objectives.py`, with MAML's other relatives (chapter 8); its
# `__call__` is those few lines: per task, φ from `inner_loop(..., first_order=True)`
# on support and query together, then ½‖θ − stop_gradient(φ)‖², averaged over the
# tasks with `vmap`.

# %%
# Mean over tasks of ½‖θ − sg(φ)‖²; its gradient is the Reptile direction mean(θ − φ).
reptile_objective = family.ReptileObjective(loss_fn, reptile_inner_lr, reptile_steps)

# %% [markdown]
# ## 2. The angle between the second- and first-order meta-gradients
#
# While each method trains, we stop once per chunk, draw a fresh probe meta-batch and
# compute both meta-gradients at the current θ. Chapter 2 looked at single tasks; this
# is the mean over a meta-batch, the kind of gradient Adam receives in the MAML and
# FOMAML runs (on a fresh probe batch, not the batch it trains on; Reptile's run hands
# Adam its own direction instead).

# %%
@partial(jax.jit, static_argnames="loss_fn")
def probe_angle(params, support, query, loss_fn, inner_lr):
    """Degrees between the MAML and FOMAML meta-gradients of one meta-batch, and |full − first|/|full|."""
    full = jax.grad(maml.maml_objective)(params, loss_fn, support, query, inner_lr)
    first = jax.grad(maml.maml_objective)(params, loss_fn, support, query, inner_lr, first_order=True)
    full, first = ravel_pytree(full)[0], ravel_pytree(first)[0]
    cosine = full @ first / (jnp.linalg.norm(full) * jnp.linalg.norm(first))
    return jnp.degrees(jnp.arccos(jnp.clip(cosine, -1.0, 1.0))), jnp.linalg.norm(full - first) / jnp.linalg.norm(full)

def run(objective, params, sample, train_key, probe_key, *, meta_steps, meta_lr, steps_per_call,
        loss_fn, inner_lr):
    """Train with Adam(meta_lr); record chunk wall times and, each chunk, the probe angle."""
    log = {"step": [], "angle": [], "dropped": [], "chunk_seconds": []}
    last = [time.perf_counter()]
    def on_chunk(step, params, opt_state, losses):
        jax.block_until_ready(params)
        now = time.perf_counter()
        log["chunk_seconds"].append(now - last[0])
        angle, dropped = probe_angle(params, *sample(jax.random.fold_in(probe_key, step)), loss_fn, inner_lr)
        log["step"].append(step); log["angle"].append(float(angle)); log["dropped"].append(float(dropped))
        last[0] = time.perf_counter()
    params, _, losses = train.optimize(params, objective, sample, train_key, steps=meta_steps, lr=meta_lr,
                                       steps_per_call=steps_per_call,
                                       on_chunk=on_chunk)
    # Time per step: chunks after the first (which includes compiling), median.
    chunk_times = log["chunk_seconds"][1:] or log["chunk_seconds"]
    log["ms_per_step"] = 1e3 * float(np.median(chunk_times)) / steps_per_call
    return params, losses, log

objectives = {   # each: objective(params, support, query)
    "MAML": train.MamlObjective(loss_fn, inner_lr),
    "FOMAML": train.MamlObjective(loss_fn, inner_lr, first_order=True),
    "Reptile": reptile_objective,
}
trained, train_losses, logs, load = {}, {}, {}, {}
for name, objective in objectives.items():   # one after another: the load can change between them
    before = os.getloadavg()[0]
    trained[name], train_losses[name], logs[name] = run(
        objective, params0, sample, train_key, probe_key, meta_steps=meta_steps, meta_lr=meta_lr,
        steps_per_call=steps_per_call, loss_fn=loss_fn, inner_lr=inner_lr)
    load[name] = (before, os.getloadavg()[0])
    print(f"{name:8s} trained; 1-minute load average {before:.1f} before, {load[name][1]:.1f} after")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), constrained_layout=True)
for name, color in (("MAML", "C0"), ("FOMAML", "C1"), ("Reptile", "C2")):
    axes[0].plot(logs[name]["step"], logs[name]["angle"], color=color, marker=".", label=f"at {name}'s θ")
axes[0].set(xlabel="meta-step", ylabel="degrees", title=f"angle between MAML and FOMAML meta-gradients\n(fresh meta-batch of {meta_batch} tasks, at the θ each method has reached)")
axes[0].legend(fontsize=8)
for name, color in (("MAML", "C0"), ("FOMAML", "C1")):
    losses = train_losses[name]
    w = max(1, len(losses) // 200)
    axes[1].plot(np.arange(w, len(losses) + 1), np.convolve(losses, np.ones(w) / w, "valid"), color=color, label=name)
axes[1].set(yscale="log", xlabel="meta-step", ylabel="query loss after 1 step (moving mean)", title="training loss")
axes[1].legend(fontsize=8)
plt.show()
for name in objectives:
    print(f"{name:8s} angle after {steps_per_call} steps {logs[name]['angle'][0]:5.1f}°, "
          f"median over training {np.median(logs[name]['angle']):5.1f}°, at the end {logs[name]['angle'][-1]:5.1f}°; "
          f"|dropped term| / |full| at the end {logs[name]['dropped'][-1]:.2f}")

# %% [markdown]
# ## 3. The meta-test and the cost per step
#
# All three are meta-tested with the same protocol as chapter 3 (fresh tasks, SGD
# with α on K points, 0 to 10 steps, 95% CI) — including Reptile, although it was
# trained with a different inner loop.

# %%
metrics = {name: sinusoid.evaluate(params, config) for name, params in trained.items()}
rows = ["| method | ms / meta-step | K=5, 1 step | K=5, 10 steps | K=10, 1 step | K=10, 10 steps |",
        "|---|---|---|---|---|---|"]
for name in objectives:
    cells = [f"{metrics[name][k]['mse'][n]:.3f} ± {metrics[name][k]['ci95'][n]:.3f}"
             for k in ("5", "10") for n in (1, 10)]
    rows.append(f"| {name} | {logs[name]['ms_per_step']:.3f} | " + " | ".join(cells) + " |")
display(Markdown("\n".join(rows)))
print("tasks left out of a mean as diverged (of the same", config.eval_tasks, "per K):",
      {name: {k: metrics[name][k]["diverged_tasks"] for k in ("5", "10", "20")} for name in objectives})

fig, axes = plt.subplots(1, 3, figsize=(14, 3.2), sharey=True, constrained_layout=True)
for ax, k in zip(axes, ("5", "10", "20")):
    for name, color in (("MAML", "C0"), ("FOMAML", "C1"), ("Reptile", "C2")):
        res = metrics[name][k]
        ax.errorbar(np.arange(len(res["mse"])), res["mse"], yerr=res["ci95"], color=color,
                    marker="o", ms=3, capsize=2, label=name)
    ax.set(yscale="log", title=f"meta-test, K = {k}", xlabel="fine-tuning steps")
    ax.legend(fontsize=8)
axes[0].set_ylabel("query MSE")
plt.show()

# %% [markdown]
# Read the table with its error bars: where two methods' 95% intervals overlap, this
# comparison does not separate them. (Overlap is a cautious test: every method is
# meta-tested on the same tasks, so a paired comparison could separate smaller gaps.)
# Computed from this run:

# %%
comparisons = {}
lines = []
for name in ("FOMAML", "Reptile"):
    for k in ("5", "10"):
        for n in (1, 10):
            a, b = metrics[name][k], metrics["MAML"][k]
            gap = a["mse"][n] - b["mse"][n]
            verdict = ("the 95% intervals overlap" if abs(gap) <= a["ci95"][n] + b["ci95"][n]
                       else "worse than MAML" if gap > 0 else "better than MAML")
            comparisons[f"{name}_K{k}_{n}"] = verdict
            lines.append(f"- {name}, K={k}, {n} step{'s' * (n > 1)}: {a['mse'][n]:.3f} vs MAML "
                         f"{b['mse'][n]:.3f} — {verdict}")
cost = {name: logs[name]["ms_per_step"] / logs["MAML"]["ms_per_step"] for name in ("FOMAML", "Reptile")}
for name, ratio in cost.items():
    lines.append(f"- {name} costs {ratio:.2f}× MAML's time per meta-step (separate runs; 1-minute load "
                 f"average {load[name][0]:.1f} at the start and {load[name][1]:.1f} at the end of {name}'s, "
                 f"{load['MAML'][0]:.1f} and {load['MAML'][1]:.1f} of MAML's)")
chunk_loss = {name: train_losses[name][: len(train_losses[name]) // steps_per_call * steps_per_call]
              .reshape(-1, steps_per_call).mean(axis=1) for name in ("MAML", "FOMAML")}
lag = float(np.mean(chunk_loss["FOMAML"] > chunk_loss["MAML"]))
lines.append(f"- FOMAML's training loss (query loss after one step, mean per chunk of {steps_per_call}) "
             f"was above MAML's in {100 * lag:.0f}% of the chunks")
angle_median = {name: float(np.median(logs[name]["angle"])) for name in objectives}
lines.append("- median angle between the two meta-batch gradients over training: "
             + ", ".join(f"{a:.0f}° at {name}'s θ" for name, a in angle_median.items())
             + f"; the dropped term's size relative to the full meta-gradient at the end: "
             + ", ".join(f"{logs[name]['dropped'][-1]:.2f} ({name})" for name in objectives))
fomaml_overlaps = all(v == "the 95% intervals overlap" for k, v in comparisons.items() if k.startswith("FOMAML"))
lines.append(f"- FOMAML's intervals overlap MAML's in {'all' if fomaml_overlaps else 'not all'} of the four "
             f"comparisons, while the median angle at FOMAML's θ is {angle_median['FOMAML']:.0f}°")
display(Markdown("\n".join(lines)))

# %% [markdown]
# How to read these lines:
#
# - **FOMAML vs MAML.** Where the verdicts say the intervals overlap, this run cannot
#   separate the two methods' final errors; the cost line says what FOMAML saves per
#   meta-step, and the training-loss line how often it lagged during training.
# - **The angle.** An angle of tens of degrees between the meta-batch gradients means
#   the term FOMAML drops is *not* small; the printed |dropped term| / |full| says
#   how large. Chapter 2 (section 5) saw the same task by task at the MAML-trained θ;
#   at the random initialisation the term was small, ≈ 2α/(1 − 2α) of the full
#   meta-gradient, for the reason its section 6 gives. A direction within 90° of the
#   true gradient still descends, and Adam averages over many noisy steps: if
#   FOMAML's final error cannot be told apart from MAML's while the angle stays
#   large, then "the dropped term is small" is not the reason it works here.
# - **Reptile**, with our untuned settings (`reptile_steps` SGD steps of
#   `reptile_inner_lr` on support and query together), never trained for a one-step,
#   α = 0.01 test, and its step runs several inner steps where MAML's runs one (the
#   cost line). Tune `reptile_steps` and `reptile_inner_lr` before concluding anything
#   about Reptile in general.
#
# ## 4. Many inner steps: the memory bill
#
# With n inner steps, the meta-gradient runs backward through all n of them, so the
# backward pass needs what each step computed: by default JAX keeps every step's
# intermediate values (activations, the inner gradients) until the backward pass.
# First-order MAML needs none of that — its meta-gradient is just g' at the end.
#
# `jax.checkpoint` (also called *remat*) trades compute for memory: it stores only
# each step's input and recomputes the step's insides during the backward pass.
# `inner_loop(..., remat=True)` wraps each inner step in it, and goes one further: a
# plain `lax.scan` would still keep every step's input θ, n of them, so the steps are
# grouped into checkpointed blocks, and the blocks into bigger blocks
# (`maml.REMAT_LEVELS = 3` levels). The backward pass then keeps one θ per block per
# level — about 3·n^(1/3) of them, ≈ 14 for n = 100 — and recomputes the rest.
#
# **What we measure.** For one meta-batch (`meta_batch` tasks), we compile the meta-gradient
# `jax.grad(maml_objective)` with XLA and read `compiled.memory_analysis()`:
# `temp_size_in_bytes` is the scratch memory XLA plans for that computation (the
# stored intermediates live there), excluding inputs and outputs. It is XLA's plan on
# this backend (CPU here), not a measurement of the process's memory; it is exact
# about what the compiled program allocates and does not depend on what else runs.

# %%
support, query = sample(jax.random.fold_in(train_key, 123))

def meta_grad_fn(loss_fn, inner_lr, steps, first_order=False, remat=False):
    """The jitted meta-gradient of one meta-batch through `steps` inner steps."""
    return jax.jit(jax.grad(partial(maml.maml_objective, loss_fn=loss_fn, inner_lr=inner_lr,
                                    inner_steps=steps, first_order=first_order, remat=remat)))

memory = {"second order": [], "second order + remat": [], "first order": []}
for steps in memory_steps:
    for label, kwargs in (("second order", {}), ("second order + remat", {"remat": True}),
                          ("first order", {"first_order": True})):
        compiled = meta_grad_fn(loss_fn, inner_lr, steps, **kwargs).lower(params0, support=support, query=query).compile()
        stats = compiled.memory_analysis()
        memory[label].append(None if stats is None else stats.temp_size_in_bytes / 2**20)

n_params = ravel_pytree(params0)[0].size
carry_floor = [meta_batch * s * n_params * 4 / 2**20 for s in memory_steps]
fig, ax = plt.subplots(figsize=(7, 3.5))
for (label, values), color in zip(memory.items(), ("C0", "C4", "C1")):
    ax.plot(memory_steps, values, marker="o", color=color, label=label)
ax.plot(memory_steps, carry_floor, "k:", label=f"θ stored once per step ({meta_batch} tasks × n × {n_params} × 4 B)")
ax.set(xscale="log", yscale="log", xlabel="inner steps n", ylabel="XLA temp memory (MiB)",
       title=f"memory of one meta-gradient, meta-batch {meta_batch}")
ax.legend(fontsize=8)
plt.show()
for i, steps in enumerate(memory_steps):
    print(f"n = {steps:3d}: second order {memory['second order'][i]:7.2f} MiB, with remat "
          f"{memory['second order + remat'][i]:7.2f} MiB, first order {memory['first order'][i]:6.2f} MiB")

# %%
second, remat_mem, first = (np.array(memory[k]) for k in ("second order", "second order + remat", "first order"))
steps_arr = np.array(memory_steps, dtype=float)
slope, intercept = np.polyfit(steps_arr, second, 1)
r_squared = 1 - np.sum((second - (slope * steps_arr + intercept)) ** 2) / np.sum((second - second.mean()) ** 2)
n_lo, n_hi = memory_steps[0], memory_steps[-1]
display(Markdown(
    f"- **Second order** grows from {second[0]:.2f} MiB at n = {n_lo} to {second[-1]:.2f} MiB at "
    f"n = {n_hi} ({second[-1] / second[0]:.0f}×); a straight line fits it with R² = {r_squared:.4f}, "
    f"{slope:.3f} MiB per inner step.\n"
    f"- **First order** goes from {first[0]:.2f} to {first[-1]:.2f} MiB ({first[-1] / first[0]:.1f}×).\n"
    f"- **Second order with remat** goes from {remat_mem[0]:.2f} to {remat_mem[-1]:.2f} MiB "
    f"({remat_mem[-1] / remat_mem[0]:.1f}×); at n = {n_hi} that is {remat_mem[-1] / carry_floor[-1]:.2f}× the dotted line "
    f"(one θ per step per task, {carry_floor[-1]:.1f} MiB), which even a flat scan of checkpointed "
    f"steps would have to keep."))

# %% [markdown]
# Remat recomputes the inner steps in the backward pass (about once per level): more
# arithmetic for the same gradient. Whether the memory it saves buys back that time
# depends on the hardware and the sizes. We check the gradient is the same and time
# both here:

# %%
steps = max(s for s in memory_steps if s <= 20)
plain, rematted = meta_grad_fn(loss_fn, inner_lr, steps), meta_grad_fn(loss_fn, inner_lr, steps, remat=True)
g_plain, g_remat = plain(params0, support=support, query=query), rematted(params0, support=support, query=query)
remat_diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_remat)))
assert remat_diff < 1e-5

def median_ms(fn, *args, repeats=20, **kwargs):
    """Median wall time of fn(*args, **kwargs) in milliseconds, waiting for the result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args, **kwargs))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))

remat_timing = {name: median_ms(fn, params0, support=support, query=query)
                for name, fn in (("plain", plain), ("remat", rematted))}
print(f"{steps} inner steps: |plain − remat| max {remat_diff:.1e}; meta-gradient "
      f"{remat_timing['plain']:.2f} ms plain, {remat_timing['remat']:.2f} ms with remat "
      f"({remat_timing['remat'] / remat_timing['plain']:.2f}×)")

# %% [markdown]
# On this CPU, with a network this small, weigh the two times above against the
# megabytes remat saved in section 4: the recomputation is what the second time pays
# for. Remat is meant for the case where memory, not time, is the limit — a large
# network with many inner steps on an accelerator whose memory is fixed; this chapter
# measures only the small CPU case above. The paper trains MiniImagenet with 5
# inner steps (its Appendix A.1) and reports that the first-order approximation sped up
# the network computation by roughly 33% there (Section 5.2).
#
# ## Try it live
#
# Every measured number above is computed from the settings in the parameters cell: change `inner_lr`, `reptile_steps`
# or `memory_steps` there (a smaller `meta_steps` for a quick pass) and run the chapter
# again.
#
# Or compare the two θ directly: the widget below fine-tunes the shipped second-order θ
# and the shipped first-order θ (`minimaml/data/sinusoid_fomaml.npz`: the same paper-config
# run with `first_order=True`) on the same task, one panel each, with their query MSE.
# Move K, α and the steps, or draw a new task. It runs on its own after a kernel restart.

# %% tags=["widget"]
from minimaml.widgets import first_vs_second_order

first_vs_second_order()

# %% [markdown]
# ## Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell: the
# `check_…` call runs your function on fresh inputs against a reference and says
# `correct`, or what differs. Solutions: `notebooks/solutions/05_first_vs_second_order.ipynb`.
#
# **1. The first-order meta-gradient of a meta-batch**, by hand: per task the gradient
# of the query loss at the adapted θ'_i, then the mean over tasks (no `first_order=`
# flag, no `stop_gradient`).

# %% tags=["exercise"]
import jax
import jax.numpy as jnp

from minimaml import maml
from minimaml.exercises.first_order import check_first_order_meta_gradient

def first_order_meta_gradient(params, loss_fn, support, query, inner_lr):
    """Mean over tasks of ∇L_query(θ'_i), θ'_i = θ − α∇L_support_i(θ)."""
    raise NotImplementedError  # your code here

check_first_order_meta_gradient(first_order_meta_gradient)

# %% [markdown]
# **2. The angle between two gradients**, in degrees, each pytree seen as one long
# vector.

# %% tags=["exercise"]
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from minimaml.exercises.first_order import check_gradient_angle

def gradient_angle(a, b):
    """The angle in degrees between pytrees a and b, each seen as one long vector."""
    raise NotImplementedError  # your code here

check_gradient_angle(gradient_angle)

# %% [markdown]
# **3. Reptile's direction** for one task: θ − φ, with φ the params after `steps` SGD
# steps on `data`.

# %% tags=["exercise"]
import jax

from minimaml import maml
from minimaml.exercises.first_order import check_reptile_direction

def reptile_direction(params, loss_fn, data, inner_lr, steps):
    """θ − φ, where φ is θ after `steps` SGD steps of size inner_lr on data."""
    raise NotImplementedError  # your code here

check_reptile_direction(reptile_direction)

# %% [markdown]
# **To explore** (no check): raise `inner_lr` to 0.1 — the dropped term grows with α
# (chapter 2); does FOMAML fall behind MAML now? Give Reptile more inner steps or plain
# SGD as the outer optimiser (`optimizer=optax.sgd(1.0)` and `lr=None` in `train.optimize`:
# the optimiser brings its own rate). Set
# `maml.REMAT_LEVELS = 1` before measuring memory.

# %%
from minimaml.runs import write_results
write_results(results_path, meta_steps=meta_steps, ms_per_step={name: logs[name]["ms_per_step"] for name in objectives}, cost_vs_maml=cost, fomaml_lag_fraction=lag, angle_degrees={name: logs[name]["angle"] for name in objectives}, dropped_at_end={name: logs[name]["dropped"][-1] for name in objectives}, metrics=metrics, memory_mib=memory, memory_steps=list(memory_steps), carry_floor_mib=carry_floor, memory_fit={"slope": slope, "r_squared": r_squared}, remat_max_abs_diff=remat_diff, remat_ms=remat_timing, comparisons=comparisons)
