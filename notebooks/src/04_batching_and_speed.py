# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 4 — Batching and speed: loop, `vmap`, `jit`, `lax.scan`
#
# **What you will learn.** Four ways to run the same MAML meta-step — a Python loop
# over tasks, `jax.vmap` over tasks, `jax.jit` around the step, and `lax.scan` over
# many steps — checked to compute the same thing and timed on *your* machine. Then
# when JAX compiles again (and how to avoid it), which is where most "JAX is slow"
# surprises come from.
#
# The numbers printed below are from the machine that ran this notebook last (its
# description is printed first); rerun it to get yours.

# %% tags=["parameters"]
meta_batch = 25       # tasks per meta-step, as in the paper
support_size = 10     # K
inner_lr = 0.01       # α
meta_lr = 1e-3        # β
repeats = 5           # timed repetitions per variant (we report the median)
scan_steps = 5000     # meta-steps for the lax.scan variant
seed = 0
results_path = None

# %%
import json
import os
import pathlib
import platform
import time
from functools import partial

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from IPython.display import Markdown, display

from minimaml import maml, sinusoid, train

plt.rcParams.update({"figure.dpi": 75, "axes.grid": True, "grid.alpha": 0.3})
loss_fn = sinusoid.sine_loss
print(f"{platform.machine()}, {os.cpu_count()} CPU cores visible, {platform.python_version()}, "
      f"jax {jax.__version__}, device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
if hasattr(os, "getloadavg"):   # other programs running make every number here slower
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))

key = jax.random.key(seed)
params = sinusoid.init_params(key)
sample = sinusoid.task_sampler(meta_batch, support_size, support_size)
support, query = sample(jax.random.fold_in(key, 1))
optimizer = optax.adam(meta_lr)
opt_state = optimizer.init(params)

def timed(fn, *args, repeats=repeats):
    """Median wall time of fn(*args) over `repeats` calls, waiting for JAX's async results."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))

# %% [markdown]
# ## 1. A Python loop over tasks
#
# The most direct transcription of Algorithm 1: for each task in the meta-batch,
# adapt with one step, take the gradient of the adapted model's query loss with
# respect to θ, average, update. Every JAX operation is dispatched from Python one
# at a time ("eager" mode).

# %%
def task_objective(params, support, query):
    """L_query(θ − α∇L_support(θ)) for one task (chapter 2's inline version)."""
    grads = jax.grad(loss_fn)(params, support)
    adapted = jax.tree.map(lambda p, g: p - inner_lr * g, params, grads)
    return loss_fn(adapted, query)

def meta_gradient_loop(params, support, query):
    grads = [jax.grad(task_objective)(params, jax.tree.map(lambda a: a[i], support),
                                      jax.tree.map(lambda a: a[i], query))
             for i in range(meta_batch)]
    return jax.tree.map(lambda *g: sum(g) / meta_batch, *grads)

def step_loop(params, opt_state, support, query):
    grads = meta_gradient_loop(params, support, query)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

timings = {}
timings["Python loop over tasks"] = timed(step_loop, params, opt_state, support, query,
                                          repeats=max(1, repeats // 2))
print(f"{1e3 * timings['Python loop over tasks']:.1f} ms per meta-step")

# %% [markdown]
# Why not call `maml.task_loss` in that loop? It runs the inner loop with `lax.scan`,
# and *outside* `jit` every call of `lax.scan` traces and compiles its body again —
# section 6 explains why. One task's meta-gradient that way:

# %%
start = time.perf_counter()
jax.block_until_ready(jax.grad(maml.task_loss)(
    params, loss_fn, jax.tree.map(lambda a: a[0], support), jax.tree.map(lambda a: a[0], query), inner_lr))
eager_scan_seconds = time.perf_counter() - start
print(f"{eager_scan_seconds:.2f} s for ONE task — library functions are meant to run under jit")

# %% [markdown]
# ## 2. `vmap` over tasks
#
# `jax.vmap` turns the one-task function into a batched one: every operation now
# acts on all the tasks at once (a (25, K, 40) array instead of 25 (K, 40) arrays).
# This is what `maml.maml_objective` does, so its gradient is the whole
# meta-gradient. Still eager, but 25× fewer dispatches.

# %%
def step_vmap(params, opt_state, support, query):
    objective = lambda p: jnp.mean(jax.vmap(task_objective, in_axes=(None, 0, 0))(p, support, query))
    grads = jax.grad(objective)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

timings["vmap over tasks"] = timed(step_vmap, params, opt_state, support, query)
print(f"{1e3 * timings['vmap over tasks']:.1f} ms per meta-step")

# Same numbers as the loop, and as the library? (Up to float32 rounding.)
loop_grads = meta_gradient_loop(params, support, query)
library_grads = jax.jit(jax.grad(maml.maml_objective), static_argnums=1)(params, loss_fn, support, query, inner_lr)
loop_vs_vmap = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                   zip(jax.tree.leaves(loop_grads), jax.tree.leaves(library_grads)))
print(f"largest difference, loop vs jax.grad(maml.maml_objective): {loop_vs_vmap:.1e}")
assert loop_vs_vmap < 1e-5

# %% [markdown]
# ## 3. `jit` the whole step
#
# `jax.jit` traces the step once into a graph, hands it to the XLA compiler, and from
# then on runs the compiled program: no Python per operation, and XLA fuses
# neighbouring operations. The first call pays for compilation; we time it apart.

# %%
def step_library(params, opt_state, support, query):
    grads = jax.grad(maml.maml_objective)(params, loss_fn, support, query, inner_lr)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

step_jit = jax.jit(step_library)
start = time.perf_counter()
jax.block_until_ready(step_jit(params, opt_state, support, query))
compile_seconds = {"jit(vmap step)": time.perf_counter() - start}
timings["jit(vmap step)"] = timed(step_jit, params, opt_state, support, query, repeats=50)
print(f"first call (trace + compile) {compile_seconds['jit(vmap step)']:.2f} s; "
      f"then {1e3 * timings['jit(vmap step)']:.3f} ms per meta-step")

# %% [markdown]
# `jit` of the *loop* version also works — tracing simply unrolls the Python loop
# into 25 copies of the graph. Once compiled it is in the same league as the `vmap`
# version (compare the two rows below), but its compile time grows with the
# meta-batch size, and XLA sees 25 small problems instead of one batched one.
# `vmap` keeps one copy.

# %%
step_loop_jit = jax.jit(step_loop)
start = time.perf_counter()
jax.block_until_ready(step_loop_jit(params, opt_state, support, query))
compile_seconds["jit(Python loop)"] = time.perf_counter() - start
timings["jit(Python loop)"] = timed(step_loop_jit, params, opt_state, support, query, repeats=50)
print(f"first call {compile_seconds['jit(Python loop)']:.2f} s; "
      f"then {1e3 * timings['jit(Python loop)']:.3f} ms per meta-step")

# %% [markdown]
# ## 4. `lax.scan` over meta-steps, tasks sampled inside
#
# A jitted step still returns to Python after every meta-step, and so far our tasks
# were sampled once, outside it (the rows above do not include sampling). `minimaml.train.optimize` (which `meta_train` calls) puts the
# sampling *inside* the step — `sample_tasks(fold_in(key, step))` with `jax.random` —
# and runs `steps_per_call` steps in one `lax.scan`, so Python is visited once per
# thousand steps. We time `scan_steps` meta-steps, then the same run with one step
# per call for comparison.

# %%
def run_optimize(steps, steps_per_call):
    objective = partial(maml.maml_objective, loss_fn=loss_fn, inner_lr=inner_lr)
    start = time.perf_counter()
    out = train.optimize(params, lambda p, s, q: objective(p, support=s, query=q), sample, key,
                         steps=steps, lr=meta_lr, steps_per_call=steps_per_call)
    jax.block_until_ready(out[0])
    return time.perf_counter() - start, out[2]

chunk = min(1000, scan_steps)
warmup_seconds, _ = run_optimize(chunk, chunk)             # compiles the chunk of `chunk` steps
scan_seconds, scan_losses = run_optimize(scan_steps, chunk)  # cached compile, if scan_steps % chunk == 0
timings[f"lax.scan, {chunk} steps per call"] = scan_seconds / scan_steps
compile_seconds[f"lax.scan, {chunk} steps per call"] = warmup_seconds - chunk * scan_seconds / scan_steps
one_seconds, _ = run_optimize(min(scan_steps, 1000), 1)
timings["jit step + sampling, 1 step per call"] = one_seconds / min(scan_steps, 1000)
print(f"{scan_steps} meta-steps in {scan_seconds:.2f} s: {1e3 * scan_seconds / scan_steps:.3f} ms per step")
print(f"one step per call: {1e3 * timings['jit step + sampling, 1 step per call']:.3f} ms per step")

# %% [markdown]
# ## 5. The timing table

# %%
baseline = timings["Python loop over tasks"]
rows = ["| variant | ms per meta-step | speed-up over the loop |", "|---|---|---|"]
for name, seconds in timings.items():
    rows.append(f"| {name} | {1e3 * seconds:.3f} | {baseline / seconds:,.0f}× |")
display(Markdown("\n".join(rows)))
print(f"the paper's 70,000 meta-steps would take: loop ≈ {70_000 * baseline / 3600:.1f} h, "
      f"scan ≈ {70_000 * timings[f'lax.scan, {chunk} steps per call']:.0f} s")

fig, ax = plt.subplots(figsize=(8, 3))
names = list(timings)
ax.barh(names, [1e3 * timings[n] for n in names], color=["C3", "C1", "C0", "C0", "C2", "C2"][:len(names)])
ax.set(xscale="log", xlabel="ms per meta-step (log scale)", title=f"One MAML meta-step, {meta_batch} tasks, K={support_size}")
ax.invert_yaxis()
plt.show()

# %% [markdown]
# Compare rows that do the same work: the last two both sample a fresh meta-batch
# each step; only the number of steps per call differs. On a CPU the tiny sinusoid network leaves little for hardware to parallelise: the
# gains come from removing Python and dispatch overhead. Compiled code is so fast
# here that the step is too small to keep even two cores busy — the project's
# benchmarks found pinning a run to one core (`taskset -c 0`) *faster*.
#
# ## 6. When does JAX compile again?
#
# `jit` caches one compiled program per **function object** and per **abstract
# signature** of its arguments: shapes, dtypes, and the *values* of static arguments.
# A change in any of these traces and compiles again. We count traces with a Python
# side effect, which runs only while tracing.

# %%
traces = []

@jax.jit
def query_mse(params, support, query, inner_lr):
    traces.append(support[0].shape)               # runs at trace time only
    return maml.task_loss(params, loss_fn, support, query, inner_lr)

task = sinusoid.sample_tasks(jax.random.fold_in(key, 2), 1, 20, 10)
one = lambda k: ((task.support_x[0, :k], task.support_y[0, :k]), (task.query_x[0], task.query_y[0]))

events = []
for label, k, lr in (("first call, K=10", 10, 0.01), ("same shapes again", 10, 0.01),
                     ("new α (a traced argument)", 10, 0.02), ("K=5: new shape", 5, 0.01),
                     ("K=10 again: cached", 10, 0.01)):
    before = len(traces)
    start = time.perf_counter()
    jax.block_until_ready(query_mse(params, *one(k), lr))
    events.append((label, len(traces) > before, time.perf_counter() - start))
for label, retraced, seconds in events:
    print(f"{label:28s} {'traced + compiled' if retraced else 'cached':18s} {1e3 * seconds:8.2f} ms")
assert [e[1] for e in events] == [True, False, False, True, False]

# %% [markdown]
# The usual ways to compile too often, and their fixes:
#
# - **Varying shapes.** Each new K or meta-batch size is a new program. Pad to a few
#   fixed sizes and pass a 0/1 mask: `minimaml.losses.mse_loss` accepts
#   `(x, y, weights)` for exactly this.
# - **Hyper-parameters as static arguments.** `static_argnames=("inner_lr",)` would
#   compile once per α. Pass numbers you want to vary as arrays (above, a new α was
#   free). Keep static only what changes the program's structure, like `inner_steps`.
# - **A new jitted function every time.** `jax.jit(lambda ...)` inside a loop creates a
#   new function object per iteration, and the cache is keyed on it:

# %%
fresh_traces = []
def slow_pattern(i):
    def objective(p):
        fresh_traces.append(i)
        return maml.task_loss(p, loss_fn, *one(10), inner_lr)
    return jax.jit(objective)(params)           # a new function object each call

start = time.perf_counter()
for i in range(3):
    jax.block_until_ready(slow_pattern(i))
print(f"3 calls, {len(fresh_traces)} compilations, {time.perf_counter() - start:.2f} s — "
      "define jitted functions once, outside the loop")
assert len(fresh_traces) == 3

# %% [markdown]
# - **The last, shorter chunk.** `train.optimize` compiles one `lax.scan` per chunk
#   length: 70,000 steps in chunks of 1,000 compile once; 70,500 steps compile twice
#   (the final chunk of 500 is a new shape). Harmless, but it explains a pause at the end.
#
# To see every compilation as it happens, run with `jax.config.update("jax_log_compiles", True)`.
#
# ## Try this
#
# - Set `meta_batch = 100`: which variants scale with the number of tasks, and which
#   barely notice?
# - Time `jit(Python loop)` compile time for `meta_batch` of 5, 25 and 100.
# - Pin the kernel to one core (`taskset -c 0 jupyter lab`) and rerun section 4.
# - In section 6, make `inner_lr` static with
#   `jax.jit(..., static_argnames="inner_lr")` and watch the trace count grow.

# %%
summary = {
    "ms_per_step": {name: 1e3 * s for name, s in timings.items()},
    "compile_seconds": compile_seconds,
    "loop_vs_vmap_max_abs_diff": loop_vs_vmap,
    "eager_scan_one_task_seconds": eager_scan_seconds,
    "retraced": {label: retraced for label, retraced, _ in events},
    "fresh_jit_compilations": len(fresh_traces),
    "scan_final_loss": float(np.mean(scan_losses[-100:])),
    "scan_first_loss": float(np.mean(scan_losses[:100])),
}
if results_path:
    pathlib.Path(results_path).write_text(json.dumps(summary, indent=1))
