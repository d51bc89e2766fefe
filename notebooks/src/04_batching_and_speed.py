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
# **What you will learn.** Several ways to run the same MAML meta-step — a Python loop
# over tasks, `jax.vmap` over tasks, `jax.jit` around the step, and `lax.scan` over
# many steps — the loop's meta-gradient checked against the library's, and each way
# timed on *your* machine. Then
# when JAX compiles again (and how to avoid it), a common source of "JAX is slow"
# surprises. Last, the same meta-step with its tasks split across several devices
# (simulated ones here) and across processes.
#
# The numbers printed below are from the machine that ran this notebook last (its
# description and load are printed at the start, the load again under section 5's
# timing table); rerun it to get yours.

# %% tags=["parameters"]
meta_batch = 25       # tasks per meta-step, the official code's default
support_size = 10     # K
inner_lr = 0.01       # α
meta_lr = 1e-3        # β
repeats = 5           # timed repetitions per variant (we report the median)
scan_steps = 5000     # meta-steps for the lax.scan variants
distributed_steps = 20  # meta-steps of section 7's two-process run
seed = 0
results_path = None

# %%
import contextlib
import os
import platform
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from IPython.display import Markdown, display

from minimaml import maml, sinusoid, train

plt.rcParams.update({"figure.dpi": 75, "axes.grid": True, "grid.alpha": 0.3})
loss_fn = sinusoid.sine_loss

def load_average():
    """The 1, 5 and 15 minute load averages: other programs running make every time slower."""
    return os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3

load_before = load_average()
print(f"{platform.machine()}, {os.cpu_count()} CPU cores visible, {platform.python_version()}, "
      f"jax {jax.__version__}, device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
print("load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in load_before))

key = jax.random.key(seed)
params = sinusoid.init_params(key)
sample = sinusoid.task_sampler(meta_batch, support_size, support_size)
support, query = sample(jax.random.fold_in(key, 1))
optimizer = optax.adam(meta_lr)
opt_state = optimizer.init(params)

def timed(fn, *args, repeats=5):
    """Median wall time of fn(*args) over `repeats` calls, waiting for JAX's async results."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))

@contextlib.contextmanager
def compilations():
    """`with compilations() as events:` — every XLA compilation inside the block (jax.monitoring)."""
    events = []
    listener = lambda event, duration, **kwargs: events.append(event) if event.startswith(
        "/jax/core/compile/backend_compile") else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)

# %% [markdown]
# ## 1. A Python loop over tasks
#
# The most direct transcription of the paper's Algorithm 2: for each task in the
# meta-batch, adapt with one step, take the gradient of the adapted model's query loss
# with respect to θ, combine, update. (Algorithm 2 sums over the tasks; we take the
# mean, the same direction, as `maml.maml_objective` does.) Every JAX operation is
# dispatched from Python one at a time ("eager" mode). All the variants of sections 1–3 get the same
# meta-batch, sampled once, outside the timing.

# %%
def task_objective(params, support, query, loss_fn, inner_lr):
    """L_query(θ − α∇L_support(θ)) for one task (chapter 2's inline version)."""
    grads = jax.grad(loss_fn)(params, support)
    adapted = jax.tree.map(lambda p, g: p - inner_lr * g, params, grads)
    return loss_fn(adapted, query)

def meta_gradient_loop(params, support, query, loss_fn, inner_lr):
    """The mean over tasks of each task's meta-gradient, one task at a time."""
    num_tasks = jax.tree.leaves(support)[0].shape[0]
    grads = [jax.grad(task_objective)(params, jax.tree.map(lambda a: a[i], support),
                                      jax.tree.map(lambda a: a[i], query), loss_fn, inner_lr)
             for i in range(num_tasks)]
    return jax.tree.map(lambda *g: sum(g) / num_tasks, *grads)

def step_loop(params, opt_state, support, query, loss_fn, inner_lr, optimizer):
    grads = meta_gradient_loop(params, support, query, loss_fn, inner_lr)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

timings = {}
timings["Python loop over tasks"] = timed(step_loop, params, opt_state, support, query, loss_fn, inner_lr,
                                          optimizer, repeats=max(1, repeats // 2))
print(f"{1e3 * timings['Python loop over tasks']:.1f} ms per meta-step")

# %% [markdown]
# Why not call `maml.task_loss` in that loop? It runs the inner loop with `lax.scan`,
# and *outside* `jit` that `lax.scan` traces and compiles its body again on every
# call — section 6 explains why. Two calls of one task's meta-gradient that way, with
# the compilations counted:

# %%
one_task = jax.tree.map(lambda a: a[0], (support, query))
eager_scan = []
for _ in range(2):
    with compilations() as compiled:
        start = time.perf_counter()
        jax.block_until_ready(jax.grad(maml.task_loss)(params, loss_fn, *one_task, inner_lr))
        eager_scan.append((time.perf_counter() - start, len(compiled)))
for i, (seconds, compiled) in enumerate(eager_scan):
    print(f"call {i + 1}: {seconds:.2f} s, {compiled} XLA compilations")

# %% [markdown]
# ## 2. `vmap` over tasks
#
# `jax.vmap` turns the one-task function into a batched one: every operation now
# acts on all the tasks at once (a (25, K, 40) array instead of 25 (K, 40) arrays), so
# Python dispatches each operation once for the whole meta-batch instead of once per
# task. This is what `maml.maml_objective` does, so its gradient is the whole
# meta-gradient.

# %%
def step_vmap(params, opt_state, support, query, loss_fn, inner_lr, optimizer):
    objective = lambda p: jnp.mean(jax.vmap(task_objective, in_axes=(None, 0, 0, None, None))(
        p, support, query, loss_fn, inner_lr))
    grads = jax.grad(objective)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

timings["vmap over tasks"] = timed(step_vmap, params, opt_state, support, query, loss_fn, inner_lr,
                                   optimizer, repeats=repeats)
print(f"{1e3 * timings['vmap over tasks']:.1f} ms per meta-step")

# Same numbers as the loop, and as the library? (Up to float32 rounding.)
loop_grads = meta_gradient_loop(params, support, query, loss_fn, inner_lr)
library_grads = jax.jit(jax.grad(maml.maml_objective), static_argnums=1)(params, loss_fn, support, query, inner_lr)
loop_vs_vmap = max(float(jnp.max(jnp.abs(a - b))) for a, b in
                   zip(jax.tree.leaves(loop_grads), jax.tree.leaves(library_grads)))
print(f"largest difference, loop vs jax.grad(maml.maml_objective): {loop_vs_vmap:.1e}")
assert loop_vs_vmap < 1e-5

# %% [markdown]
# ## 3. `jit` the whole step
#
# `jax.jit` traces the step once into a graph, hands it to the XLA compiler, and from
# then on runs the compiled program: no Python per operation, and XLA can fuse
# neighbouring operations. The first call pays for compilation; we time it apart.
# (`loss_fn` and `optimizer` are not arrays, so they are static arguments: part of the
# compiled program.)

# %%
def step_library(params, opt_state, support, query, loss_fn, inner_lr, optimizer):
    grads = jax.grad(maml.maml_objective)(params, loss_fn, support, query, inner_lr)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

step_jit = jax.jit(step_library, static_argnames=("loss_fn", "optimizer"))
start = time.perf_counter()
jax.block_until_ready(step_jit(params, opt_state, support, query, loss_fn, inner_lr, optimizer))
compile_seconds = {"jit(vmap step)": time.perf_counter() - start}
timings["jit(vmap step)"] = timed(step_jit, params, opt_state, support, query, loss_fn, inner_lr,
                                  optimizer, repeats=50)
print(f"first call (trace + compile) {compile_seconds['jit(vmap step)']:.2f} s; "
      f"then {1e3 * timings['jit(vmap step)']:.3f} ms per meta-step")

# %% [markdown]
# `jit` of the *loop* version also works — tracing simply unrolls the Python loop
# into one copy of the task's graph per task, where `vmap` keeps one batched copy.

# %%
step_loop_jit = jax.jit(step_loop, static_argnames=("loss_fn", "optimizer"))
start = time.perf_counter()
jax.block_until_ready(step_loop_jit(params, opt_state, support, query, loss_fn, inner_lr, optimizer))
compile_seconds["jit(Python loop)"] = time.perf_counter() - start
timings["jit(Python loop)"] = timed(step_loop_jit, params, opt_state, support, query, loss_fn, inner_lr,
                                    optimizer, repeats=50)
print(f"first call {compile_seconds['jit(Python loop)']:.2f} s; "
      f"then {1e3 * timings['jit(Python loop)']:.3f} ms per meta-step")

# %% [markdown]
# ## 4. `lax.scan` over meta-steps
#
# A jitted step still returns to Python after every meta-step. `minimaml.train.optimize`
# (which `meta_train` calls) runs `steps_per_call` steps inside one `lax.scan`, so
# Python is visited once per chunk. It also samples each step's tasks *inside* the
# compiled program, `sample_tasks(fold_in(key, step))` with `jax.random`, where our
# rows so far reused one meta-batch sampled outside.
#
# To compare like with like we time `optimize` four ways: one step per call or 1,000,
# and with the same fixed meta-batch as above at every step or with a fresh one sampled
# inside. Each is compiled by a first run and then timed on a second, with the
# compilations during the timed run counted (they should be 0).

# %%
objective = train.MamlObjective(loss_fn, inner_lr)     # objective(params, support, query); equal ones share a compilation
def always(batch):
    """A task sampler that returns `batch` whatever the key."""
    return lambda key: batch

fixed_batch = always((support, query))                  # the meta-batch of sections 1–3, at every step

def time_optimize(params, objective, sample_tasks, key, steps, steps_per_call, meta_lr):
    """ms per meta-step of train.optimize on a second, timed run; compilations during that run."""
    train.optimize(params, objective, sample_tasks, key, steps=min(steps, steps_per_call), lr=meta_lr,
                   steps_per_call=steps_per_call)          # compiles the chunk
    with compilations() as events:
        start = time.perf_counter()
        out = train.optimize(params, objective, sample_tasks, key, steps=steps, lr=meta_lr,
                             steps_per_call=steps_per_call)
        jax.block_until_ready(out[0])
        seconds = time.perf_counter() - start
    return 1e3 * seconds / steps, len(events), out[2]

chunk = min(1000, scan_steps)
runs = {("fixed meta-batch", 1): (fixed_batch, min(scan_steps, 1000), 1),
        ("fixed meta-batch", chunk): (fixed_batch, scan_steps, chunk),
        ("sampled inside", 1): (sample, min(scan_steps, 1000), 1),
        ("sampled inside", chunk): (sample, scan_steps, chunk)}
scan = {}
for (tasks_from, per_call), (sampler, steps, per_call) in runs.items():
    ms, recompiled, losses = time_optimize(params, objective, sampler, key, steps, per_call, meta_lr)
    scan[(tasks_from, per_call)] = {"ms": ms, "compilations": recompiled, "losses": losses}
    print(f"{tasks_from:16s} {per_call:5d} step{'s' * (per_call > 1)} per call: {ms:.3f} ms per meta-step "
          f"({steps} steps, {recompiled} compilations while timed)")
scan_losses = scan[("sampled inside", chunk)]["losses"]
timings[f"optimize, fixed meta-batch, 1 step per call"] = scan[("fixed meta-batch", 1)]["ms"] / 1e3
timings[f"optimize, fixed meta-batch, {chunk} steps per call"] = scan[("fixed meta-batch", chunk)]["ms"] / 1e3
timings[f"optimize, sampled inside, 1 step per call"] = scan[("sampled inside", 1)]["ms"] / 1e3
timings[f"optimize, sampled inside, {chunk} steps per call"] = scan[("sampled inside", chunk)]["ms"] / 1e3

# The jit(vmap step) row once more, timed like the optimize rows: one run of calls that
# carries θ and Adam's state forward, its wall time divided by its steps.
run_steps = min(scan_steps, 1000)
carried = (params, opt_state)
start = time.perf_counter()
for _ in range(run_steps):
    carried = step_jit(*carried, support, query, loss_fn, inner_lr, optimizer)
jax.block_until_ready(carried)
timings[f"jit(vmap step), a run of {run_steps} calls"] = (time.perf_counter() - start) / run_steps
print(f"jit(vmap step) as a run of {run_steps} calls: "
      f"{1e3 * timings[f'jit(vmap step), a run of {run_steps} calls']:.3f} ms per meta-step")

# %% [markdown]
# ## 5. The timing table
#
# Every row is one meta-step of MAML on a meta-batch of the parameters cell's size
# (`meta_batch` tasks of K = `support_size` points; the paper's sinusoid runs use K = 10,
# Section 5.1, and the official code's default meta-batch of 25), second order, one
# Adam update.
# Rows differ in *how* it runs, and the last column in what each row includes: whether
# it samples a fresh meta-batch every step. Compare rows with the same "samples tasks"
# entry. The rows are also timed two ways: the first four as the *median* of single
# calls (the eager loop over 2 calls, `vmap` over `repeats`, the two `jit` rows over
# 50), the `optimize` rows as the wall time of a whole run of 1,000 or `scan_steps`
# steps divided by its steps — a *mean*. The two ways differ twice over: a mean keeps
# every pause that other programs on the machine cause (the load is printed under the
# table), where a median of single calls leaves the slow calls out; and each single
# call is waited for (`block_until_ready`) before the next one starts, where in the
# last row's run of calls Python can already dispatch the next call while XLA still
# computes the last (JAX's asynchronous dispatch). `optimize` does not overlap its
# calls that way: after each call it copies that call's losses to NumPy to check them
# for NaN, which waits for the call, so its one-step rows wait at every step. So the
# two ways can give one step different times, in either direction. The last row times `jit(vmap step)` the way the `optimize` rows are timed
# (a run of calls, carrying θ and Adam's state, wall time over steps): set it beside
# the `jit(vmap step)` row to see how much the way of timing moves the same step on
# this run, and compare it, not the median row, with the fixed-meta-batch `optimize`
# rows.
# Two rows with the same steps per call but different "samples tasks" entries
# differ by the cost of sampling *plus* this machine's timing noise: when the two such
# pairs below disagree (one says sampling is free or even faster), the noise is the
# larger of the two. On a 2-core Xeon at a load average of about 1 (0.88 before its
# run, 1.07 after), sampling inside cost about 0.07 ms per
# meta-step on both cores (0.377 ms against 0.311 ms with one fixed batch) and about
# 0.04 ms pinned to one (0.292 against 0.249 ms; BENCHMARKS.md, section "Sinusoid
# meta-training speed").
# The last line under the table scales two rows to the 70,000 meta-steps of the
# official code's sinusoid command (`--metatrain_iterations=70000`, as in chapter 3),
# compilation left out.

# %%
load_after = load_average()
baseline = timings["Python loop over tasks"]
samples = {name: "yes" if "sampled inside" in name else "no" for name in timings}
rows = ["| variant | ms per meta-step | speed-up over the loop | samples tasks |", "|---|---|---|---|"]
for name, seconds in timings.items():
    rows.append(f"| {name} | {1e3 * seconds:.3f} | {baseline / seconds:,.0f}× | {samples[name]} |")
display(Markdown("\n".join(rows)))
fastest_fixed = min((s, n) for n, s in timings.items() if samples[n] == "no")
print(f"load average before: {', '.join(f'{x:.1f}' for x in load_before)}; "
      f"after: {', '.join(f'{x:.1f}' for x in load_after)}")
print(f"the official code's 70,000 sinusoid meta-steps would take: loop ≈ {70_000 * baseline / 3600:.1f} h, "
      f"optimize, sampled inside, {chunk} steps per call ≈ {70_000 * timings[f'optimize, sampled inside, {chunk} steps per call']:.0f} s")

fig, ax = plt.subplots(figsize=(8, 3.6))
names = list(timings)
ax.barh(names, [1e3 * timings[n] for n in names],
        color=["C2" if samples[n] == "yes" else "C0" for n in names])
ax.set(xscale="log", xlabel="ms per meta-step (log scale)",
       title=f"One MAML meta-step, {meta_batch} tasks, K={support_size} (green: samples its tasks)")
ax.invert_yaxis()
plt.show()

# %%
fixed1, fixedN = timings["optimize, fixed meta-batch, 1 step per call"], timings[f"optimize, fixed meta-batch, {chunk} steps per call"]
samp1, sampN = timings["optimize, sampled inside, 1 step per call"], timings[f"optimize, sampled inside, {chunk} steps per call"]
display(Markdown(
    f"- `jit` of the vmapped step: {1e3 * timings['jit(vmap step)']:.3f} ms, "
    f"{baseline / timings['jit(vmap step)']:,.0f}× faster than the eager loop; `jit` of the loop "
    f"{1e3 * timings['jit(Python loop)']:.3f} ms, after {compile_seconds['jit(Python loop)']:.1f} s of "
    f"compiling against {compile_seconds['jit(vmap step)']:.1f} s for the vmapped step.\n"
    f"- Same work, fixed meta-batch: one step per `optimize` call {1e3 * fixed1:.3f} ms, {chunk} "
    f"steps per call {1e3 * fixedN:.3f} ms ({fixed1 / fixedN:.1f}× faster: the Python round trip "
    f"per step is gone).\n"
    f"- Timed the same way (one run, mean per step), `jit(vmap step)` called {run_steps} times from "
    f"Python: {1e3 * timings[f'jit(vmap step), a run of {run_steps} calls']:.3f} ms, against "
    f"{1e3 * fixedN:.3f} ms for `optimize` with {chunk} steps per call on the same fixed meta-batch.\n"
    f"- Sampling inside vs the fixed meta-batch: {1e3 * (samp1 - fixed1):+.3f} ms per step at one "
    f"step per call, {1e3 * (sampN - fixedN):+.3f} ms at {chunk} per call. "
    + ("Both pairs say sampling costs time; this run does not separate how much of their "
       "difference is timing noise and how much a cost per call (the one-step rows make "
       f"{min(scan_steps, 1000)} calls); the load is printed under the table."
       if min(samp1 - fixed1, sampN - fixedN) > 0 else
       "One pair says sampling is free or faster, which it cannot be: in this run (one run of "
       "each, mean per step; the load is printed under the table) the timing noise is larger "
       "than the cost of sampling; BENCHMARKS.md, \"Sinusoid meta-training speed\", measured "
       "it from medians over 1,000-step chunks at a load average of about 1.")))

# %% [markdown]
# The meta-step's arithmetic is the same in every row (the sampling rows add the
# sampling): XLA counts 10.7 MFLOP per second-order meta-step, which the project's
# benchmark ran at 28–37 GFLOP/s, about 0.3–0.4 ms (BENCHMARKS.md, section "Sinusoid
# meta-training speed"). So on this tiny network what the faster rows save is
# overhead, not arithmetic: Python's per-operation dispatch (the eager rows against the
# `jit` rows) and Python's round trip at every step (one step per `optimize` call
# against 1,000). Unrolling the `meta_batch` task copies instead of `vmap`-ing them
# costs compile time (the two `jit` rows' first calls, printed above); whether it also
# costs time per step on this CPU, the two `jit` rows' times say.
# Nor did the step gain from a second CPU core: on a 2-core Xeon that
# benchmark measured 0.292 ms per meta-step pinned to one core (`taskset -c 0`)
# against 0.377 ms on both — one core was faster.
#
# ## 6. When does JAX compile again?
#
# `jit` caches one compiled program per **function object** and per **abstract
# signature** of its arguments: shapes, dtypes, and the *values* of static arguments.
# A change in any of these traces and compiles again. We count traces with a Python
# side effect, which runs only while tracing.

# %%
traces = []      # filled by query_mse while JAX traces it: the side effect is the point here

@jax.jit
def query_mse(params, support, query, inner_lr):
    traces.append(support[0].shape)               # runs at trace time only
    return maml.task_loss(params, sinusoid.sine_loss, support, query, inner_lr)

task = sinusoid.sample_tasks(jax.random.fold_in(key, 2), 1, 20, 10)
def one(task, k):
    """The task's first k support points and its query set, as (support, query)."""
    return (task.support_x[0, :k], task.support_y[0, :k]), (task.query_x[0], task.query_y[0])

events = []
for label, k, lr in (("first call, K=10", 10, 0.01), ("same shapes again", 10, 0.01),
                     ("new α (a traced argument)", 10, 0.02), ("K=5: new shape", 5, 0.01),
                     ("K=10 again: cached", 10, 0.01)):
    before = len(traces)
    start = time.perf_counter()
    jax.block_until_ready(query_mse(params, *one(task, k), lr))
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
#   compile once per α. Pass numbers you want to vary as arrays (above, a new α did
#   not compile again). Keep static only what changes the program's structure, like
#   `inner_steps`. (minimaml's `train.MamlObjective`, used in section 4, keeps α static
#   on purpose: its docstring explains that a traced α changes XLA's second-order
#   arithmetic in the last bits, and training should give bitwise what a constant α
#   gives.)
# - **A new jitted function every time.** `jax.jit(lambda ...)` inside a loop creates a
#   new function object per iteration, and the cache is keyed on it. The same thing
#   made section 1's eager `maml.task_loss` compile on every call: outside `jit`,
#   `lax.scan` compiles its body, and `maml.inner_loop` defines that body afresh each
#   time it runs. Counted:

# %%
fresh_traces = []
def slow_pattern(i, params, support, query, inner_lr):
    def objective(p):
        fresh_traces.append(i)
        return maml.task_loss(p, sinusoid.sine_loss, support, query, inner_lr)
    return jax.jit(objective)(params)           # a new function object each call

start = time.perf_counter()
for i in range(3):
    jax.block_until_ready(slow_pattern(i, params, *one(task, 10), inner_lr))
print(f"3 calls, {len(fresh_traces)} compilations, {time.perf_counter() - start:.2f} s — "
      "define jitted functions once, outside the loop")
assert len(fresh_traces) == 3

# %% [markdown]
# - **The last, shorter chunk.** `train.optimize` compiles one `lax.scan` per chunk
#   length. A run of two full chunks compiles the chunk once; a run of one and a half
#   chunks reuses it and compiles once more, for its last, shorter chunk (a new static
#   length); running that again compiles nothing. Counted:

# %%
per_call = min(chunk, 500)
fresh_objective = train.MamlObjective(loss_fn, inner_lr, first_order=True)   # not compiled yet
chunk_compiles = {}
for label, steps in (("two full chunks", 2 * per_call), ("one and a half", 3 * per_call // 2),
                     ("one and a half, again", 3 * per_call // 2)):
    with compilations() as compiled:
        train.optimize(params, fresh_objective, sample, key, steps=steps, lr=meta_lr, steps_per_call=per_call)
    chunk_compiles[label] = len(compiled)
    print(f"{label:22s} {steps:5d} steps in chunks of {per_call}: {len(compiled)} compilation{'s' * (len(compiled) != 1)}")

# %% [markdown]
# To see every compilation as it happens, run with `jax.config.update("jax_log_compiles", True)`.

# %% [markdown]
# ## 7. More devices
#
# The tasks of a meta-batch are independent until the very end, where their
# meta-gradients are averaged. So the task axis splits cleanly across devices: each
# device adapts its share of the tasks, and the mean needs one *all-reduce* (every
# device adds up its partial sums and gets the total back). In JAX we do not write that
# all-reduce: we say how an array is laid out — a `NamedSharding` of a `Mesh` of
# devices — and XLA's partitioner splits the computation and inserts the communication.
# In minimaml it is one argument, `devices=` of `optimize`, `meta_train`, `pretrain` and
# `finetune_curves` (a count, a list of devices, or a mesh with a `"tasks"` axis):
# params and optimizer state are replicated, the task batch is split along `"tasks"`.
#
# This kernel has one device (JAX's default on a CPU). To see eight, we ask XLA for eight *host devices* — eight
# simulated devices sharing this CPU — and that must be set before JAX starts, so the
# next cell computes section 3's meta-gradient (`jax.grad(maml.maml_objective)`, the
# tasks sampled inside the jitted function as `optimize` does) in a fresh Python process
# with `JAX_NUM_CPU_DEVICES=8`, and prints what it finds.

# %%
import json
import pathlib
import subprocess
import sys

EIGHT_DEVICES = r'''
import json, re, sys, time
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from minimaml import maml, sinusoid
from minimaml.devices import shard_tasks, task_mesh, task_sharding
from minimaml.train import meta_train

setting = json.loads(sys.argv[1])
meta_batch, steps = setting["meta_batch"], setting["steps"]
print("devices:", jax.devices())
mesh = task_mesh(8)                              # a 1-D mesh: one axis, "tasks"
sharding = task_sharding(mesh)                   # NamedSharding(mesh, P("tasks"))
print(mesh, "->", sharding.spec)

key = jax.random.key(setting["seed"])
params = sinusoid.init_params(key)
sample = sinusoid.task_sampler(meta_batch, setting["support_size"], setting["support_size"])
inner_lr = setting["inner_lr"]

def meta_gradient(params, key, sharding=None):
    """Section 3's meta-gradient, the tasks sampled inside (as optimize does)."""
    support, query = sample(key)
    if sharding is not None:
        support, query = shard_tasks((support, query), sharding)
        jax.debug.inspect_array_sharding(   # called once, while compiling
            support[0], callback=lambda s: print("inside the step, support_x is", s.spec))
    return jax.grad(maml.maml_objective)(params, sinusoid.sine_loss, support, query,
                                         inner_lr)

step = jax.jit(meta_gradient, static_argnames="sharding")
one = step(params, key)
eight = step(params, key, sharding)
difference = max(float(np.max(np.abs(a - b))) for a, b in
                 zip(jax.tree.leaves(one), jax.tree.leaves(eight)))
print(f"largest difference, 8 devices vs 1: {difference:.1e}")
program = step.lower(params, key, sharding).compile().as_text()
rows = sorted({int(r) for r in re.findall(r"f32\[(\d+),%d,1\]" % setting["support_size"],
                                          program)})
all_reduces = len(re.findall(r" all-reduce(?:-start)?[(]", program))
print(f"each device's program holds support sets of {rows} tasks: 8 × {rows[0]} = "
      f"{8 * rows[0]} rows for {meta_batch} tasks, {8 * rows[0] - meta_batch} of them "
      f"padding; all-reduce ops in the program: {all_reduces}")

per_device = max(1, meta_batch // 8)             # a whole number of tasks per device
picture = jax.device_put(
    sinusoid.sample_tasks(key, 8 * per_device, setting["support_size"], 1).support_x[:, :, 0],
    NamedSharding(mesh, P("tasks")))
print(f"support_x of {8 * per_device} tasks, (tasks, K), as laid out on the devices "
      f"(device i holds rows {per_device}·i to {per_device}·i + {per_device - 1}):")
jax.debug.visualize_array_sharding(picture, use_color=False)

timings = {}
for devices in (1, 2, 8):
    run = lambda: meta_train(params, sinusoid.sine_loss, sample, key, meta_steps=steps,
                             inner_lr=inner_lr, steps_per_call=steps, devices=devices)
    jax.block_until_ready(run())                 # compile
    start = time.perf_counter()
    _, _, losses = run()
    timings[devices] = (time.perf_counter() - start) / steps * 1e3
    if devices == 1:
        first_losses = losses
print("RESULTS " + json.dumps({"difference": difference, "rows": rows, "ms": timings,
      "all_reduces": all_reduces,
      "loss_difference": float(np.max(np.abs(losses - first_losses)))}))
'''

setting = {"meta_batch": meta_batch, "support_size": support_size, "inner_lr": inner_lr,
           "seed": seed, "steps": min(1000, scan_steps)}
done = subprocess.run([sys.executable, "-c", EIGHT_DEVICES, json.dumps(setting)],
                      env={**os.environ, "JAX_NUM_CPU_DEVICES": "8", "JAX_PLATFORMS": "cpu",
                           "NO_COLOR": "1"},   # a plain-text picture
                      capture_output=True, text=True)
assert done.returncode == 0, done.stderr[-2000:]
output, _, results_line = done.stdout.rpartition("RESULTS ")
print(output)
eight_devices = json.loads(results_line)
assert eight_devices["difference"] < 1e-5 and eight_devices["all_reduces"] == 1

# %% [markdown]
# Read the printout from the top. Inside the jitted step the support set is laid out as
# `P('tasks')`: split along its first axis. The meta-gradient agrees with the one-device
# one to float32 rounding (the partial sums are added in another order). A meta-batch
# that does not divide by 8 is padded by XLA to the next multiple, and the padding is
# masked out of every reduction, so the mean is over the real tasks only
# (tests/test_devices.py checks uneven batches against one device). Each device's
# program holds only its own share: the tasks are *sampled* on the device that uses
# them, and a single all-reduce adds up the partial meta-gradients — XLA wrote it, we
# only declared the layout. The picture is that layout for a whole number of tasks per
# device.
#
# And the speed of a meta-step here, the task batch split over 1, 2 and 8 simulated
# devices (`meta_train(..., devices=n)`, one compiled call of many steps each):

# %%
rows = ["| devices | ms per meta-step |", "|---|---|"]
rows += [f"| {d} | {ms:.3f} |" for d, ms in eight_devices["ms"].items()]
display(Markdown("\n".join(rows)))
print(f"loss curves, 8 devices vs 1: largest difference {eight_devices['loss_difference']:.1e}")
ratio = eight_devices["ms"]["8"] / eight_devices["ms"]["1"]
print(f"8 simulated devices vs 1: {ratio:.1f}× the time per meta-step")

# %% [markdown]
# Simulated devices share this machine's cores: they are for seeing and testing the
# layout, not for speed. What a split costs is a fixed amount per step — the devices
# meet at every all-reduce — against the work per task, which it divides. The project's
# benchmark (BENCHMARKS.md, section "More devices: the task axis over CPU host
# devices", `benchmarks/devices_speed.py`) measured 1 against 2 host devices on a
# loaded 2-core machine, in CPU time (which, it notes, measures the work where the
# wall time measured the queue for the cores). Fitting a line through two meta-batch
# sizes, splitting added no CPU time per task and a fixed ≈0.09 ms per sinusoid
# meta-step (0.03 → 0.12 ms) — about a quarter of the whole 0.34 ms step — but only
# ≈8 ms per Omniglot 5-way 1-shot step (−0.9 → 7.2 ms), about 3% of its 241 ms. A
# step with little work per device (the sinusoid) cannot hide the meeting; a heavy one
# can. On real accelerators each device brings its own compute, so the split should
# pay once a device's share of the tasks keeps it busy — this project has not measured
# that (its GPU runs, BENCHMARKS.md "Omniglot MAML on a GPU", use one card).
#
# ### Many hosts
#
# Past one machine, JAX runs one Python process per host, all running the same
# program ("multi-controller"). `minimaml.devices.initialize_distributed` joins them
# (it calls `jax.distributed.initialize`, after checking that the coordinator answers:
# a wrong address fails within a timeout, with one line, rather than hanging). Each
# process then draws *its own share* of every meta-batch from `fold_in(key,
# process_index)` — no two processes draw the same tasks — and `optimize` splits the
# global meta-batch over every device of every process:
#
# ```python
# # the same script on every host, e.g. two:
# #   host 0: python train.py 10.0.0.1:1234 2 0      host 1: python train.py 10.0.0.1:1234 2 1
# initialize_distributed(coordinator, processes, process_id)   # before any other JAX call
# sample = sinusoid.task_sampler(process_share(24), 10, 10)   # 24 / processes: this one's share
# params, _, _ = meta_train(params, loss_fn, sample, key, meta_steps=..., inner_lr=0.01)
# ```
#
# (24, not the usual 25: every process draws an equal share, and `process_share`
# refuses a meta-batch that does not divide among the processes, naming both numbers.)
#
# Two processes on this machine, talking over 127.0.0.1, show it works: both end with
# the same params, equal (to float rounding) to one process drawing the same global
# meta-batch (`TaskShares(sampler, 2)`: the two shares, concatenated).

# %%
import socket
import tempfile

TWO_PROCESSES = r'''
import sys, jax, numpy as np
from minimaml import sinusoid
from minimaml.devices import TaskShares, initialize_distributed, process_share
from minimaml.train import meta_train
out, coordinator, process_id, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if coordinator == "single":
    sample = TaskShares(sinusoid.task_sampler(3, 10, 10), 2)   # both shares, one process
else:
    initialize_distributed(coordinator, 2, process_id)
    sample = sinusoid.task_sampler(process_share(6), 10, 10)    # this process's 3 of 6
key = jax.random.key(0)
params, _, losses = meta_train(sinusoid.init_params(key), sinusoid.sine_loss, sample, key,
                               meta_steps=steps, inner_lr=0.01, meta_lr=0.01)
np.savez(out, losses=losses, processes=jax.process_count(),
         **{f"param{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(params))})
'''

with socket.socket() as s:                           # a free port for the coordinator
    s.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{s.getsockname()[1]}"
env = {**os.environ, "JAX_PLATFORMS": "cpu"}
folder = pathlib.Path(tempfile.mkdtemp())
workers = [subprocess.Popen([sys.executable, "-c", TWO_PROCESSES, str(folder / f"{i}.npz"),
                             address, str(i), str(distributed_steps)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
           for i in (0, 1)]
errors = [w.communicate(timeout=600)[1] for w in workers]
assert all(w.returncode == 0 for w in workers), errors
subprocess.run([sys.executable, "-c", TWO_PROCESSES, str(folder / "single.npz"), "single", "0",
                str(distributed_steps)], env=env, check=True, capture_output=True)
first, second, single = (np.load(folder / f"{n}.npz") for n in ("0", "1", "single"))
params_names = [n for n in first.files if n.startswith("param")]
same = all(np.array_equal(first[n], second[n]) for n in params_names)
vs_single = max(float(np.max(np.abs(first[n] - single[n]))) for n in params_names)
print(f"{int(first['processes'])} processes, {distributed_steps} meta-steps of 2 × 3 tasks: "
      f"identical params in both: {same}; largest difference to one process: {vs_single:.1e}")
assert same and vs_single < 1e-5

# %% [markdown]
# And a coordinator that is not there (nothing listens on that port):

# %%
from minimaml.devices import initialize_distributed

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    nobody = f"127.0.0.1:{s.getsockname()[1]}"
start = time.perf_counter()
try:
    initialize_distributed(nobody, processes=2, process_id=1, timeout=3)
except ValueError as err:
    absent_coordinator = str(err)
print(f"after {time.perf_counter() - start:.1f} s: {absent_coordinator}")

# %% [markdown]
# The command lines take the same route: `--devices N` splits the tasks over N devices
# (on a CPU, N host devices, at most one per core), and `--distributed` with
# `--coordinator`, `--processes` and `--process-id` (or `$JAX_COORDINATOR_ADDRESS`,
# `$JAX_NUM_PROCESSES`, `$JAX_PROCESS_ID`) joins a multi-process run, e.g. on each of two
# hosts `python -m minimaml.omniglot --distributed --coordinator 10.0.0.1:1234
# --processes 2 --process-id I`; each process writes its own `--out`, and `metrics.json`
# records the devices. `tests/test_cli_devices.py` checks that both command lines give
# the one-device results on two host devices, and that two processes end with the same
# params.

# %% [markdown]
# ## Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell: the
# `check_…` call runs your function on fresh inputs against a reference and says
# `correct`, or what differs. Solutions: `notebooks/solutions/04_batching_and_speed.ipynb`.
#
# **1. The inner loop as one `lax.scan`**: `steps` SGD steps of size `inner_lr` on the
# support set, the params as the scan's carry — no Python loop.

# %% tags=["exercise"]
import jax

from minimaml.exercises.batching import check_scan_inner_loop

def scan_inner_loop(params, loss_fn, support, inner_lr, steps):
    """θ after `steps` SGD steps on the support set, with jax.lax.scan (no Python loop)."""
    raise NotImplementedError  # your code here

check_scan_inner_loop(scan_inner_loop)

# %% [markdown]
# **2. A jitted loss that compiles once for every α**: the query loss after one SGD
# step on the support set (`sinusoid.sine_loss`), jitted, such that calling it with a
# new `inner_lr` does not compile again. The check counts compilations.

# %% tags=["exercise"]
import jax

from minimaml import maml, sinusoid
from minimaml.exercises.batching import check_compiles_once

def adapted_query_loss(params, support, query, inner_lr):
    """Query loss after one SGD step of size inner_lr on the support set (one task)."""
    raise NotImplementedError  # your code here

check_compiles_once(adapted_query_loss)

# %% [markdown]
# **To explore** (no check): set `meta_batch = 100` — which rows scale with the number
# of tasks? Time `jit(Python loop)`'s compilation for `meta_batch` of 5, 25 and 100.
# Pin the kernel to one core (`taskset -c 0 jupyter lab`) and rerun section 4.
# In section 7, set `meta_batch = 24` and then `meta_batch = 4`: how many tasks does each
# device's program hold, and how many devices hold only padding? Print section 7's
# compiled program (`step.lower(params, key, sharding).compile().as_text()` in its
# script) and find the `all-reduce`: which arrays does it add up?

# %%
from minimaml.runs import write_results
write_results(results_path, ms_per_step={name: 1e3 * s for name, s in timings.items()}, samples_tasks=samples, compile_seconds=compile_seconds, loop_vs_vmap_max_abs_diff=loop_vs_vmap, eager_scan=eager_scan, scan_compilations_while_timed={f"{a}, {b}": v["compilations"] for (a, b), v in scan.items()}, retraced={label: retraced for label, retraced, _ in events}, fresh_jit_compilations=len(fresh_traces), chunk_compilations=chunk_compiles, scan_final_loss=float(np.mean(scan_losses[-100:])), scan_first_loss=float(np.mean(scan_losses[:100])), load_before=load_before, load_after=load_after,
              eight_devices=eight_devices, two_processes={"identical": same, "max_abs_diff_to_one_process": vs_single, "processes": int(first["processes"])}, absent_coordinator=absent_coordinator)
