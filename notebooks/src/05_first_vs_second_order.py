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
# **What you will learn.** How first-order MAML (FOMAML) and Reptile, two cheaper
# relatives of MAML, compare with full second-order MAML on the sinusoid benchmark:
# final meta-test error, time per meta-step, and the angle between the second- and
# first-order meta-gradients *during* training. Then the memory bill of many inner
# steps, and `jax.checkpoint` (rematerialisation) as the remedy — measured, not
# assumed.

# %% tags=["parameters"]
meta_steps = 70_000     # per method; the paper's sinusoid budget
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
import json
import pathlib
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
                         eval_tasks=eval_tasks, seed=seed).validate()
key = jax.random.key(seed)
init_key, train_key, probe_key = jax.random.split(key, 3)
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
# Reptile does not differentiate through anything: it moves θ towards the weights
# each task ends up with. We can still hand it to the same optax training loop by
# writing an objective whose gradient *is* θ − φ: ½‖θ − stop_gradient(φ)‖².
# Reptile uses all of a task's data for its inner steps, so here support and query
# together. That objective is in the library, `minimaml/family/objectives.py`, with
# MAML's other relatives (chapter 8); its `__call__` holds the lines this chapter
# used to write out here.

# %%
# Mean over tasks of ½‖θ − sg(φ)‖²; its gradient is the Reptile direction mean(θ − φ).
reptile_objective = family.ReptileObjective(loss_fn, reptile_inner_lr, reptile_steps)

# %% [markdown]
# ## 2. The angle between the second- and first-order meta-gradients
#
# While MAML trains, we stop once per chunk, draw a fresh probe meta-batch and compute
# both meta-gradients at the current θ. Chapter 2 looked at single tasks; this is the
# meta-batch gradient that Adam actually receives.

# %%
@jax.jit
def probe_angle(params, probe_key):
    support, query = sample(probe_key)
    full = jax.grad(maml.maml_objective)(params, loss_fn, support, query, inner_lr)
    first = jax.grad(maml.maml_objective)(params, loss_fn, support, query, inner_lr, first_order=True)
    full, first = ravel_pytree(full)[0], ravel_pytree(first)[0]
    cosine = full @ first / (jnp.linalg.norm(full) * jnp.linalg.norm(first))
    return jnp.degrees(jnp.arccos(jnp.clip(cosine, -1.0, 1.0))), jnp.linalg.norm(full - first) / jnp.linalg.norm(full)

def run(name, objective):
    """Train with Adam(meta_lr); record chunk wall times and, each chunk, the probe angle."""
    log = {"step": [], "angle": [], "dropped": [], "chunk_seconds": []}
    last = [time.perf_counter()]
    def on_chunk(step, params, opt_state, losses):
        jax.block_until_ready(params)
        now = time.perf_counter()
        log["chunk_seconds"].append(now - last[0])
        angle, dropped = probe_angle(params, jax.random.fold_in(probe_key, step))
        log["step"].append(step); log["angle"].append(float(angle)); log["dropped"].append(float(dropped))
        last[0] = time.perf_counter()
    params, _, losses = train.optimize(params0, lambda p, s, q: objective(p, support=s, query=q), sample,
                                       train_key, steps=meta_steps, lr=meta_lr, steps_per_call=steps_per_call,
                                       on_chunk=on_chunk)
    # Time per step: chunks after the first (which includes compiling), median.
    chunk_times = log["chunk_seconds"][1:] or log["chunk_seconds"]
    log["ms_per_step"] = 1e3 * float(np.median(chunk_times)) / steps_per_call
    return params, losses, log

objectives = {
    "MAML": partial(maml.maml_objective, loss_fn=loss_fn, inner_lr=inner_lr),
    "FOMAML": partial(maml.maml_objective, loss_fn=loss_fn, inner_lr=inner_lr, first_order=True),
    "Reptile": reptile_objective,
}
trained, train_losses, logs = {}, {}, {}
for name, objective in objectives.items():
    trained[name], train_losses[name], logs[name] = run(name, objective)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), constrained_layout=True)
for name, color in (("MAML", "C0"), ("FOMAML", "C1"), ("Reptile", "C2")):
    axes[0].plot(logs[name]["step"], logs[name]["angle"], color=color, marker=".", label=f"at {name}'s θ")
axes[0].set(xlabel="meta-step", ylabel="degrees", title="angle between MAML and FOMAML meta-gradients\n(fresh meta-batch of 25 tasks, at the θ each method has reached)")
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
# Read the table with its error bars: where two methods' intervals overlap, this run
# cannot tell them apart. Computed from this run:

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
for name in ("FOMAML", "Reptile"):
    lines.append(f"- {name} costs {logs[name]['ms_per_step'] / logs['MAML']['ms_per_step']:.2f}× "
                 "MAML's time per meta-step")
display(Markdown("\n".join(lines)))

# %% [markdown]
# What the committed full-size run showed, and how we read it:
#
# - **FOMAML** ends close to MAML — within the error bars everywhere we compared, its
#   one-step means a little higher — at well under half the cost per meta-step. Its
#   training loss lagged MAML's for most of the run, so with a smaller budget the gap
#   is larger.
# - **The angle** between the two meta-gradients is large and noisy throughout —
#   tens of degrees, at both methods' θ — so the dropped Hessian term is not small
#   (chapter 2 saw the same task by task). Yet a direction within 90° of the true
#   gradient still descends, Adam averages over many noisy steps, and both methods
#   arrive at similar initialisations. "The term is small" is *not* why FOMAML works
#   here.
# - **Reptile**, with our untuned settings (5 SGD steps of 0.02 on support + query
#   together), is clearly behind after one step of the meta-test protocol and closer
#   after ten. It never trained for a one-step, α = 0.01 test; its per-step cost is
#   higher because of its 5 inner steps. Tune `reptile_steps` and
#   `reptile_inner_lr` before concluding anything about Reptile in general.
#
# ## 4. Many inner steps: the memory bill
#
# With n inner steps, the meta-gradient runs backward through all n of them, so the
# backward pass needs what each step computed: by default JAX keeps every step's
# intermediate values (activations, the inner gradients) until the backward pass.
# Memory grows linearly with n. First-order MAML needs none of that — its meta-gradient
# is just g' at the end.
#
# `jax.checkpoint` (also called *remat*) trades compute for memory: it stores only
# each step's input and recomputes the step's insides during the backward pass.
# `inner_loop(..., remat=True)` wraps each inner step in it, and goes one further: a
# plain `lax.scan` would still keep every step's input θ, n of them, so the steps are
# grouped into checkpointed blocks, and the blocks into bigger blocks
# (`maml.REMAT_LEVELS = 3` levels). The backward pass then keeps one θ per block per
# level — about 3·n^(1/3) of them, 13 for n = 100 — and recomputes the rest.
#
# **What we measure.** For one meta-batch of 25 tasks, we compile the meta-gradient
# `jax.grad(maml_objective)` with XLA and read `compiled.memory_analysis()`:
# `temp_size_in_bytes` is the scratch memory XLA plans for that computation (the
# stored intermediates live there), excluding inputs and outputs. It is XLA's plan on
# this backend (CPU here), not a measurement of the process's memory; it is exact
# about what the compiled program allocates and does not depend on what else runs.

# %%
support, query = sample(jax.random.fold_in(key, 123))

def meta_grad_fn(steps, first_order=False, remat=False):
    return jax.jit(jax.grad(partial(maml.maml_objective, loss_fn=loss_fn, inner_lr=inner_lr,
                                    inner_steps=steps, first_order=first_order, remat=remat)))

memory = {"second order": [], "second order + remat": [], "first order": []}
for steps in memory_steps:
    for label, kwargs in (("second order", {}), ("second order + remat", {"remat": True}),
                          ("first order", {"first_order": True})):
        compiled = meta_grad_fn(steps, **kwargs).lower(params0, support=support, query=query).compile()
        stats = compiled.memory_analysis()
        memory[label].append(None if stats is None else stats.temp_size_in_bytes / 2**20)

n_params = ravel_pytree(params0)[0].size
carry_floor = [meta_batch * s * n_params * 4 / 2**20 for s in memory_steps]
fig, ax = plt.subplots(figsize=(7, 3.5))
for (label, values), color in zip(memory.items(), ("C0", "C4", "C1")):
    ax.plot(memory_steps, values, marker="o", color=color, label=label)
ax.plot(memory_steps, carry_floor, "k:", label="θ stored once per step (25 tasks × n × 1761 × 4 B)")
ax.set(xscale="log", yscale="log", xlabel="inner steps n", ylabel="XLA temp memory (MiB)",
       title="memory of one meta-gradient, meta-batch 25")
ax.legend(fontsize=8)
plt.show()
for i, steps in enumerate(memory_steps):
    print(f"n = {steps:3d}: second order {memory['second order'][i]:7.2f} MiB, with remat "
          f"{memory['second order + remat'][i]:7.2f} MiB, first order {memory['first order'][i]:6.2f} MiB")

# %% [markdown]
# Second-order memory grows linearly with the number of inner steps; first-order stays
# flat. With `remat=True` the curve stays far below even the dotted line — the θ of
# every inner step, which a flat scan of checkpointed steps would still have to keep:
# the nested blocks keep only a handful of θ's and recompute the rest.
#
# Remat recomputes the inner steps in the backward pass (about once per level): more
# arithmetic for the same gradient. Whether that costs wall time depends on the hardware — with a network
# this small on a CPU, touching less memory can pay for the recomputation. We check
# the gradient is the same and time both:

# %%
steps = max(s for s in memory_steps if s <= 20)
plain, rematted = meta_grad_fn(steps), meta_grad_fn(steps, remat=True)
g_plain, g_remat = plain(params0, support=support, query=query), rematted(params0, support=support, query=query)
remat_diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_remat)))
assert remat_diff < 1e-5

def median_ms(fn, repeats=20):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(params0, support=support, query=query))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))

remat_timing = {"plain": median_ms(plain), "remat": median_ms(rematted)}
print(f"{steps} inner steps: |plain − remat| max {remat_diff:.1e}; meta-gradient "
      f"{remat_timing['plain']:.2f} ms plain, {remat_timing['remat']:.2f} ms with remat")

# %% [markdown]
# On a GPU with a big network, memory is what stops you from taking many inner steps
# (the paper uses 5 on MiniImagenet and first-order for some runs partly for this
# reason); remat moves that limit at the price of extra compute.
#
# ## Try this
#
# - Raise `inner_lr` to 0.1: the dropped term grows with α (chapter 2). Does FOMAML
#   fall behind MAML now?
# - Train MAML and FOMAML with `inner_steps=5` via `train.meta_train(..., inner_steps=5)`.
# - Give Reptile more inner steps (`reptile_steps = 20`) or plain SGD as the outer
#   optimiser (`optimizer=optax.sgd(1.0)` in `train.optimize`, the "ε = 1" of the paper).
# - Set `maml.REMAT_LEVELS = 1` (one flat scan of checkpointed steps) or 2 (blocks of
#   about √n steps) before measuring: where does the remat curve move, and the time?
# - Try a `policy=jax.checkpoint_policies.dots_saveable` argument to `jax.checkpoint`.

# %%
summary = {
    "meta_steps": meta_steps,
    "ms_per_step": {name: logs[name]["ms_per_step"] for name in objectives},
    "angle_degrees": {name: logs[name]["angle"] for name in objectives},
    "metrics": metrics,
    "memory_mib": memory,
    "memory_steps": list(memory_steps),
    "carry_floor_mib": carry_floor,
    "remat_max_abs_diff": remat_diff,
    "remat_ms": remat_timing,
    "comparisons": comparisons,
}
if results_path:
    pathlib.Path(results_path).write_text(json.dumps(summary, indent=1))
