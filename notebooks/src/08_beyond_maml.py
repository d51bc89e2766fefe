# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 8 — Beyond MAML: the family on one inner loop
#
# **What you will learn.** MAML's best-known relatives — first-order MAML, Meta-SGD,
# ANIL, MAML++, Reptile and iMAML — are not seven programs. Each changes one to three
# things about the same inner loop: the step size, which parameters move, which losses
# count, or how the meta-gradient is obtained. `minimaml.maml.inner_loop` has those
# knobs (all off by default, where it is exactly chapter 3's MAML; tests/test_family.py
# checks that neutral settings give MAML back — bitwise for a mask that adapts everything,
# to rounding for equal rates given as arrays or learned), and
# `minimaml.family` writes each relative as a short recipe on top of it. We look at
# each change in a few lines of code and one equation, compare them on two of the
# paper's benchmarks (the sinusoid of its §5.1 and Omniglot 5-way 1-shot of its §5.2;
# this chapter's section 4), adapt one task from each one's θ side
# by side, look at the step sizes Meta-SGD and MAML++ learn, plug in a Flax or Equinox model, and end with when
# to pick which.

# %% tags=["parameters"]
meta_steps = 3000     # per variant, for this chapter's own short comparison (section 3)
eval_tasks = 300      # meta-test tasks for that comparison
seed = 0
own_model_steps = 300 # meta-steps for the Flax / Equinox recipes (section 7)
divergence_steps = 8000  # MAML++ with the rates at θ's Adam step, until it diverges (section 2)
results_path = None   # the tests set this to collect a JSON summary

# %%
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from jax.flatten_util import ravel_pytree

from minimaml import family, maml, mse_loss, sinusoid, train
from minimaml.evaluate import mean_ci95
from minimaml.widgets.family import COLORS, family_widget, shipped_learners, shipped_results

plt.rcParams.update({"figure.dpi": 75, "axes.grid": True, "grid.alpha": 0.3})
loss_fn = sinusoid.sine_loss
key = jax.random.key(seed)
init_key, train_key, task_key = jax.random.split(key, 3)
params0 = sinusoid.init_params(init_key)
sampler = sinusoid.task_sampler(25, 10, 10)          # the paper's meta-batch, K = 10 + 10
task = sinusoid.sample_tasks(task_key, 1, 10, 100)
support = (task.support_x[0], task.support_y[0])

# %% [markdown]
# ## 1. One inner loop, four knobs
#
# Chapter 1's inner loop is θ' = θ − α∇L_support(θ), repeated. `inner_loop` (and so
# `task_loss` and `maml_objective`; `train.meta_train` passes on `adapt` only, and
# `family.meta_train` sets the others through a recipe) takes four more settings:
#
# | knob | what it means | off (MAML) |
# |---|---|---|
# | `inner_lr` as a pytree | one α per tensor (leaves `()`), per entry (leaves shaped like the parameter), or per layer (a prefix of the params' tree) | one number |
# | `lr_per_step=True` | `inner_lr` has a leading axis of `inner_steps`: row t is step t's rate | the same α every step |
# | `adapt=` a mask or a predicate `(path, leaf) -> bool` | only those parameters move; the others are not even differentiated in the inner loop | all adapt |
# | `query_weights=` (`task_loss`, `maml_objective`) | Σₜ wₜ L_query(θₜ): the query loss after *every* step, weighted | the last step only |
#
# Each in one cell, on one task, starting from the MAML θ that ships with the library
# (the `maml` row of section 4's table), since θ is what these knobs fine-tune:

# %%
theta = shipped_learners()["maml"].params
per_layer = maml.inner_loop(theta, loss_fn, support, [0.005, 0.01, 0.02], 5)   # one α per layer
per_step = maml.inner_loop(theta, loss_fn, support, jnp.array([0.02, 0.01, 0.01, 0.005, 0.005]), 5,
                           lr_per_step=True)
head_only = maml.inner_loop(theta, loss_fn, support, 0.01, 5, adapt=[False, False, True])
weighted = maml.task_loss(theta, loss_fn, support, (task.query_x[0], task.query_y[0]), 0.01, 5,
                          query_weights=jnp.array([0.1, 0.1, 0.1, 0.2, 0.5]))
knob_support_loss = {}
for name, adapted in (("per layer", per_layer), ("per step", per_step), ("head only", head_only)):
    knob_support_loss[name] = (float(loss_fn(theta, support)), float(loss_fn(adapted, support)))
    print(f"{name:>10}: support loss {knob_support_loss[name][0]:.3f} → {knob_support_loss[name][1]:.3f}")
body_moved = any(bool(jnp.any(a != b)) for a, b in zip(jax.tree.leaves(theta[:2]),
                                                          jax.tree.leaves(head_only[:2])))
print(f"head only: did the body move? {body_moved}")
print(f"multi-step query loss Σ w_t L_query(θ_t) = {float(weighted):.3f}")

# %% [markdown]
# "Not even differentiated" is a claim about the program, so let us look at it. The
# inner loop is a `lax.scan` whose carry is what adapts: with the head-only mask the
# scan carries the head's two tensors, not all six, and `jax.grad` inside it asks for
# the head's gradient only — no backward pass through the body at all
# (tests/test_family.py checks this with a body that records whether its backward pass
# ever runs: it never does).

# %%
def scan_carry(**kwargs):
    jaxpr = jax.make_jaxpr(lambda p: maml.inner_loop(p, loss_fn, support, 0.01, 5, **kwargs))(params0)
    (scan,) = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    return scan.params["num_carry"], sum(1 for e in scan.params["jaxpr"].jaxpr.eqns if e.primitive.name == "dot_general")

carry_all, dots_all = scan_carry()
carry_head, dots_head = scan_carry(adapt=[False, False, True])
print(f"all adapt: scan carries {carry_all} tensors, {dots_all} matmuls per inner step")
print(f"head only: scan carries {carry_head} tensors, {dots_head} matmuls per inner step")

# %% [markdown]
# Read the matmuls: the forward pass of the 1-40-40-1 net has 3; the head-only step adds
# one, the head weight's gradient, and nothing for the body, while adapting everything
# adds the full backward pass.
#
# ## 2. Seven algorithms, one line each
#
# Every recipe returns a *plan*: the pytree Adam trains (θ, or θ with learned rates),
# a schedule of objectives, and how the result is fine-tuned at test time.
# `family.meta_train(name, ...)` runs any of them with the same optax loop as
# chapter 3. What each one changes:
#
# | algorithm | the change, in one equation | in code |
# |---|---|---|
# | **MAML** (Finn et al. 2017, §2.2, Eq. 1) | θ ← θ − β ∇_θ Σᵢ L_qᵢ(θ − α∇L_sᵢ(θ)) | `family.maml(...)` = `train.meta_train` |
# | **FOMAML** (ibid., §5.2) | ∇_θ ≈ Σᵢ ∇L_qᵢ(θ'ᵢ): treat dθ'/dθ as I | `maml_objective(..., first_order=True)` |
# | **Meta-SGD** (Li et al. 2017, §3, Alg. 1) | θ' = θ − **α** ∘ ∇L_s(θ), and (θ, **α**) ← (θ, **α**) − β∇Σᵢ L_qᵢ(θ'ᵢ) | `LearnedRates(θ, α)` + `InnerLoopObjective(inner_lr=None)` |
# | **ANIL** (Raghu et al. 2020, §4) | θ' = (θ_body, θ_head − α∇_head L_s(θ)) | `adapt=[False, False, True]` |
# | **MAML++** (Antoniou et al. 2019, §4) | θₜ₊₁ = θₜ − α_{ℓ,t}∇_ℓ L_s(θₜ); loss Σₜ wₜ L_q(θₜ); first order for the first meta-steps | `lr_per_step=True`, `query_weights`, a two-phase schedule |
# | **Reptile** (Nichol et al. 2018, Alg. 2) | θ ← θ + ε · meanᵢ(φᵢ − θ), φᵢ = θ after k SGD steps | `ReptileObjective`: ∇ of ½‖θ − sg(φ)‖² is θ − φ |
# | **iMAML** (Rajeswaran et al. 2019, §2–3, Lemma 1) | φ* = argmin L_s(φ) + λ/2‖φ − θ‖²;  ∇_θ = (I + H/λ)⁻¹ ∇L_q(φ*) | `ImamlObjective`: CG with Hessian-vector products |
#
# The MAML++ row is three of the paper's six changes (§4): learned per-layer per-step
# rates (LSLR), the multi-step loss (MSL) and derivative-order annealing (DA). Its
# per-step BatchNorm statistics and weights (BNRS, BNWB) and the cosine schedule of the
# meta learning rate (CA) are not in the recipe, so "MAML++" in this chapter's tables
# means those three — on the sinusoid. The Omniglot run follows the official code's
# Omniglot configs, which train second order from the start
# (`first_order_to_second_order_epoch: -1`; the table's `first_order_steps=0`), so
# there it is LSLR and MSL without DA — and, stopped by its CPU budget at 180
# meta-steps, before the weights' first stair at step 600, it trained with equal
# step weights throughout (BENCHMARKS.md, "The MAML family: omniglot").
#
# MAML++ switches from first to second order partway. In the training loop that is
# two compiled objectives, not a branch inside one: `train.optimize_schedule` runs
# each phase as an `optimize` call that resumes the Adam state of the last, so the
# compiled chunk never carries both, and the multi-step weights — arrays inside the
# objective pytree — change between phases without recompiling (a chunk of a new
# length still compiles once more: the scan's length is static). Here is its schedule
# for 70,000 meta-steps with 5 inner steps:

# %%
mamlpp_plan = family.mamlpp(params0, loss_fn, meta_steps=70_000, inner_lr=0.01, inner_steps=5,
                            rate_meta_lr=1e-4)
for until, objective in mamlpp_plan.schedule:
    print(f"until step {until:6d}: {'first ' if objective.first_order else 'second'} order, "
          f"step weights {np.round(np.asarray(objective.query_weights), 3)}")

# %% [markdown]
# Read the weights: they start equal and move towards the last step in stairs of 700
# meta-steps; from `msl_steps` (by default the first 10% of training, 7,000 steps) on,
# the early steps keep a floor of 0.006 each and the last step takes the rest. (The
# official code, HowToTrainYourMAMLPytorch, uses the last step's loss alone once its
# annealing epochs end; its minimum weight for the early steps is the same 0.03/5 = 0.006,
# and keeping them there after the annealing is our choice, `multi_step_weights(floor=...)`.) Second order begins at
# step 23,333, a third of the run.
#
# One setting of MAML++ needs care: `rate_meta_lr`, Adam's learning rate for the learned
# rates. Adam's step on each parameter is of the order of its learning rate whatever the
# size of the gradient (on the first step, exactly its learning rate). A rate that starts at the sinusoid's α = 0.01 therefore moves by
# about 10% of itself per step at β = 10⁻³, ten times more than in MAML++'s own setting
# (in the official code, HowToTrainYourMAMLPytorch, the rates start at `task_learning_rate`
# = 0.1 — its Omniglot configs' `init_inner_loop_learning_rate` is 0.1 too — and one Adam
# at `meta_learning_rate` = 10⁻³ trains them with θ). The first cell shows one Adam
# step; the second trains the benchmark's MAML++ run (same seed, same schedule as the
# 70,000-step one) with θ's β for the rates for `divergence_steps` meta-steps, and says
# where its loss stopped being finite. With
# `rate_meta_lr = β · α / 0.1 = 10⁻⁴` the full 70,000-step run trains (the table in
# section 4).

# %%
one_step = {}
for rate_meta_lr in (None, 1e-4):
    learned_1, _, _ = family.meta_train("mamlpp", params0, loss_fn, sampler, train_key, meta_steps=1,
                                        inner_lr=0.01, options={"inner_steps": 5, "rate_meta_lr": rate_meta_lr})
    moved = np.concatenate([np.abs(np.ravel(r - 0.01)) for r in jax.tree.leaves(learned_1.inner_lr)])
    one_step[str(rate_meta_lr)] = float(moved.max())
    print(f"rate_meta_lr={rate_meta_lr}: after one meta-step the rates moved by up to {moved.max():.2e} "
          f"({100 * moved.max() / 0.01:.0f}% of α = 0.01)")

# %%
full_schedule = {"inner_steps": 5, "first_order_steps": 70_000 // 3, "msl_steps": 70_000 // 10}
try:
    _, _, same_beta_losses = family.meta_train("mamlpp", params0, loss_fn, sampler, train_key,
                                               meta_steps=divergence_steps, inner_lr=0.01,
                                               options=full_schedule, steps_per_call=500)
    same_beta = {"diverged_at_step": None, "steps": divergence_steps}
    print(f"rates at θ's β: {divergence_steps} meta-steps, the loss stayed finite "
          f"(last 100 steps' mean {same_beta_losses[-100:].mean():.3f})")
except train.TrainingDiverged as err:
    same_beta = {"diverged_at_step": err.step, "steps": divergence_steps}
    print(f"rates at θ's β: the loss became {err.loss} at meta-step {err.step:,}")

# %% [markdown]
# iMAML is the odd one out: its meta-gradient is not the derivative of what the inner
# loop computed but the implicit-function-theorem answer at the inner problem's
# minimiser. `family.implicit_adapt` returns φ from gradient steps on the regularised
# loss, and its custom backward pass solves (I + H/λ)x = v by conjugate gradient
# (`jax.scipy.sparse.linalg.cg`) with Hessian-vector products. On a tiny network we can
# check it against the dense formula directly:

# %%
with jax.enable_x64(True):
    tiny = jax.tree.map(lambda a: a.astype(jnp.float64), sinusoid.init_params(init_key, (4,)))
    tiny_support = jax.tree.map(lambda a: a.astype(jnp.float64), support)
    tiny_query = jax.tree.map(lambda a: a.astype(jnp.float64), (task.query_x[0], task.query_y[0]))
    reg = 2.0
    implicit = jax.grad(lambda p: loss_fn(family.implicit_adapt(p, loss_fn, tiny_support, 0.05, 30, reg,
                                                                cg_steps=50, cg_tol=1e-12), tiny_query))(tiny)
    phi = family.implicit_adapt(tiny, loss_fn, tiny_support, 0.05, 30, reg)
    flat_phi, unravel = ravel_pytree(phi)
    hessian = jax.hessian(lambda f: loss_fn(unravel(f), tiny_support))(flat_phi)
    g_query = ravel_pytree(jax.grad(loss_fn)(phi, tiny_query))[0]
    dense = np.linalg.solve(np.eye(flat_phi.size) + hessian / reg, g_query)
    imaml_gap = float(np.abs(ravel_pytree(implicit)[0] - dense).max())
print(f"{flat_phi.size} parameters: |CG implicit gradient − dense (I + H/λ)⁻¹∇L_q| max = {imaml_gap:.1e}")

# %% [markdown]
# ## 3. A short race, run here
#
# All seven from the same θ, the same tasks (same seed) and the same number of
# meta-steps (`meta_steps` in the parameters cell), each with the settings of the
# full-size benchmark below. Then the meta-test of chapter 3 on fresh tasks (K = 10),
# each variant fine-tuned its own way (Meta-SGD and MAML++ with the rates they
# learned — the last learned step's rate repeated past the steps they trained —,
# ANIL the head only, iMAML plain SGD at the α = 0.002 of its inner solve, without the
# regulariser, as the authors' code meta-tests — `measure_accuracy.py --lam 0.0` at the
# training `--inner_lr` in aravindr93/imaml_dev's examples/README.md —, the others plain
# SGD at α = 0.01), and
# the time per meta-step measured in this kernel (median over chunks after the first,
# which compiles; MAML++'s row is a median over its first-order and second-order phases,
# whose chunks of new lengths compile too).

# %%
SETTINGS = {   # (inner_lr, recipe options): the same as benchmarks/family_results.py
    "maml": (0.01, {}), "fomaml": (0.01, {}), "metasgd": (0.01, {}), "anil": (0.01, {}),
    "mamlpp": (0.01, {"inner_steps": 5, "rate_meta_lr": 1e-4}),
    "reptile": (0.02, {"inner_steps": 5, "eval_inner_lr": 0.01}),
    "imaml": (0.002, {"inner_steps": 40, "reg": 5.0}),
}
eval_set = sinusoid.sample_tasks(jax.random.fold_in(task_key, 1), eval_tasks, 10, 100)
race = {}
for name, (inner_lr, options) in SETTINGS.items():
    marks = []
    start = time.perf_counter()
    try:
        learned, _, losses = family.meta_train(name, params0, loss_fn, sampler, train_key, meta_steps=meta_steps,
                                               inner_lr=inner_lr, options=options,
                                               steps_per_call=max(1, meta_steps // 10),
                                               on_chunk=lambda step, *_: marks.append((step, time.perf_counter())))
    except train.TrainingDiverged as err:      # said, not hidden: the row shows where
        race[name] = {"diverged_at_step": err.step, "ms_per_step": float("nan")}
        continue
    steps, times = np.array([m[0] for m in marks]), np.array([m[1] for m in marks])
    ms = 1e3 * np.median(np.diff(times) / np.diff(steps)) if len(marks) > 1 else np.nan
    curves = learned.finetune_curves(loss_fn, eval_set.support, eval_set.query, 10)
    finite = np.isfinite(curves).all(axis=1)
    mean, ci = mean_ci95(curves[finite]) if finite.any() else (np.full(11, np.nan),) * 2
    race[name] = {"ms_per_step": float(ms), "mse": mean.tolist(), "ci95": ci.tolist(),
                  "diverged_tasks": int((~finite).sum()), "losses": losses, "learned": learned,
                  "seconds": time.perf_counter() - start}

rows = ["| variant | ms / meta-step | K=10, 1 step | K=10, 5 steps | K=10, 10 steps | tasks diverged by step 10 |",
        "|---|---|---|---|---|---|"]
for name, r in race.items():
    if "diverged_at_step" in r:
        rows.append(f"| {name} | | training diverged at meta-step {r['diverged_at_step']} | | | |")
        continue
    cells = [f"{r['mse'][n]:.3g} ± {r['ci95'][n]:.2g}" for n in (1, 5, 10)]
    rows.append(f"| {name} | {r['ms_per_step']:.2f} | " + " | ".join(cells) + f" | {r['diverged_tasks']} of {eval_tasks} |")
display(Markdown("\n".join(rows)))

# %%
fig, ax = plt.subplots(figsize=(9, 3.4))
for name, r in race.items():
    if "losses" not in r:
        continue
    losses = r["losses"]
    w = max(1, len(losses) // 50)
    ax.plot(np.arange(w, len(losses) + 1), np.convolve(losses, np.ones(w) / w, "valid"), label=name,
            color=COLORS[name])
ax.set(yscale="log", xlabel="meta-step", ylabel="training objective (moving mean)",
       title="what each variant minimises (Reptile's is ½‖θ − φ‖², not a query loss)")
ax.legend(fontsize=8, ncol=4)
plt.show()

# %% [markdown]
# A few thousand meta-steps is a small fraction of the 70,000 of the official code's
# sinusoid command (README, chapter 3's row), so read this
# table as a sketch of the early race, not of the finish; the next section has the
# full-size runs. The ms column is this kernel's, on whatever machine runs it.
#
# ## 4. The full-size tables
#
# `benchmarks/family_results.py` trained every variant with the command line
# (`python -m minimaml.sinusoid --algorithm NAME`, `python -m minimaml.omniglot
# --algorithm NAME`), the same seed for all, and wrote the tables into BENCHMARKS.md
# (sections "The MAML family: sinusoid" and "… omniglot", with the machine, the
# versions and every command) and into `minimaml/data/family_*.json`, which we read
# here. The θs of the sinusoid runs ship with the package (`minimaml/data/family_sinusoid.npz`)
# and drive the widget in section 5.

# %%
shipped = shipped_results()
learners_for_curvature = shipped_learners()
for benchmark in ("sinusoid", "omniglot"):
    if benchmark in shipped:
        display(Markdown(f"**{benchmark}** — from {shipped[benchmark]['section']}; "
                         f"machine: {shipped[benchmark]['machine']}\n\n{shipped[benchmark]['table']}"))
    else:
        print(f"no {benchmark} table shipped (run benchmarks/family_results.py {benchmark})")

# %%
sin = shipped.get("sinusoid", {}).get("results", {})
names = [n for n, r in sin.items() if r and "settings" in r]       # the runs that trained
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), constrained_layout=True)
for ax, k in zip(axes, ("5", "10")):
    for offset, n in zip((-0.25, 0, 0.25), (1, 5, 10)):
        values = [sin[name]["mse"][k]["mse"][n] for name in names]
        errors = [sin[name]["mse"][k]["ci95"][n] for name in names]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(np.arange(len(names)) + offset, heights, 0.25,
               yerr=[np.nan if e is None else e for e in errors], capsize=2, label=f"{n} step{'s' * (n > 1)}")
    if sin.get("pretrained"):
        ax.axhline(sin["pretrained"]["mse"][k]["mse"][10], color="gray", ls=":", label="pretrained, 10 steps")
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set(yscale="log", ylabel="query MSE (600 tasks, 95% CI)", title=f"sinusoid, K = {k}, 70,000 meta-steps")
    ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# **Past the trained steps (†).** Meta-SGD learned its rates for one inner step, MAML++
# for five; the table takes them further by repeating the last learned step's rates,
# and marks those cells †. Nothing in training made those rates good for more steps,
# and the shipped results say what happens:

# %%
past_trained = {}
for name in ("metasgd", "mamlpp"):
    r = sin.get(name)
    if not r or "settings" not in r:
        continue
    trained_steps = int(r["settings"].split()[0])
    for k in ("5", "10"):
        res = r["mse"][k]
        mse = res["mse"]
        past_trained[f"{name} K={k}"] = {"trained_steps": trained_steps, "diverged_tasks": res["diverged_tasks"],
                                         "diverged_after_step": res.get("diverged_after_step")}
        trained_cell = f"{mse[trained_steps]:.3f}"
        later = ", ".join(f"step {n}: {'diverged' if mse[n] is None else f'{mse[n]:.3g}'}"
                          for n in (5, 10) if n > trained_steps)
        print(f"{name:>8} K={k:>2}: {trained_cell} after its {trained_steps} trained step(s); {later}; "
              f"{res['diverged_tasks']} of {res['tasks']} tasks' MSE became non-finite within 10 steps")

# %% [markdown]
# **Why ANIL blows up at K = 5.** With only the head adapting, the support loss is a
# quadratic in the head's weights (MSE of a linear layer on fixed features), and
# gradient descent on a quadratic diverges exactly when α exceeds 2/λ_max, λ_max the
# largest eigenvalue of its Hessian. Meta-training with one step of α = 0.01 can reward
# features that make that one step large, and nothing stops λ_max from passing 2/α = 200
# on some tasks. We compute it for the shipped ANIL and MAML θ on the 600 meta-test
# tasks of each K:

# %%
def head_hessian_max(params, support):
    """λ_max of the support loss's Hessian in the last layer's weights and bias."""
    flat_head, unravel = ravel_pytree(params[-1])
    hessian = jax.hessian(lambda h: loss_fn(params[:-1] + [unravel(h)], support))(flat_head)
    return jnp.linalg.eigvalsh(hessian)[-1]

head_curvature = {}
for name in ("anil", "maml"):
    if name not in learners_for_curvature:
        continue
    for k in (5, 10):
        eval_tasks_k = sinusoid.evaluation_tasks(sinusoid.Config(), k)
        lam = np.asarray(jax.vmap(lambda s: head_hessian_max(learners_for_curvature[name].params, s))(
            eval_tasks_k.support))
        head_curvature[f"{name} K={k}"] = {"median": float(np.median(lam)), "max": float(lam.max()),
                                           "above_2_over_alpha": float((lam > 2 / 0.01).mean())}
        print(f"{name:>4} K={k:>2}: head λ_max median {np.median(lam):6.1f}, max {lam.max():6.1f}; "
              f"{100 * (lam > 200).mean():4.1f}% of tasks above 2/α = 200")

# %% [markdown]
# ANIL's meta-learned features give the head 2.5 to 3 times MAML's median curvature
# (132–153 against 52–53), so 13.7% of its K = 5 tasks sit above 2/α (MAML: none) and
# diverge when fine-tuned for many steps at the α it trained with. The fix a careful
# user would make is at meta-test, not in training: a smaller step for the longer
# fine-tuning, below 2/λ_max on every task — the table's `anil_finetune-lr-0.005` row
# (same training settings, fine-tuned at α = 0.005: 2/0.005 = 400, above the largest
# λ_max printed above).
#
# iMAML's θ is tuned to its inner solver in the same way: it trained with 40 steps at
# α = 0.002. Fine-tuned at that α (the table), and at MAML's α = 0.01:

# %%
imaml_alpha = {}
if "imaml" in learners_for_curvature:
    theta = learners_for_curvature["imaml"].params
    for k in (5, 10):
        eval_tasks_k = sinusoid.evaluation_tasks(sinusoid.Config(), k)
        for alpha in (learners_for_curvature["imaml"].inner_lr, 0.01):
            curves = family.Learned(theta, alpha).finetune_curves(loss_fn, eval_tasks_k.support,
                                                                  eval_tasks_k.query, 10)
            diverged = int((~np.isfinite(curves).all(axis=1)).sum())
            imaml_alpha[f"K={k} α={alpha:g}"] = diverged
            print(f"iMAML K={k:>2}, SGD at α = {alpha:g}: {diverged} of {len(curves)} tasks' MSE "
                  f"non-finite within 10 steps")

# %% [markdown]
# ## 5. Same task, every θ
#
# The widget fine-tunes one task from each variant's full-size θ, each its own way.
# **K** and **steps** work as in chapter 7's playground. **α** scales every variant's
# own rate by α / 0.01: at α = 0.01 each fine-tunes exactly as it was meta-tested (MAML,
# FOMAML, ANIL and Reptile at 0.01, iMAML at its 0.002, Meta-SGD and MAML++ with the
# rates they learned). The last panel is each variant's query MSE on 100 fresh points
# of the task after every step. The widget needs a live kernel; a saved copy shows a
# still picture. The cell runs on its own after a restart.

# %% tags=["widget"]
from minimaml.widgets.family import family_widget   # every variant's shipped θ

family_widget(seed=0)

# %% [markdown]
# Things to try: at steps = 1, compare Meta-SGD with MAML (Meta-SGD's one step was
# learned entry by entry); then press steps up to 10 and lower K. Meta-SGD's rates were
# learned for one step at K = 10, and the † cells of section 4 show them overshooting on
# some tasks (55 of 600 at K = 10): find the K at which they do on this one. Drop K to 2
# and compare ANIL (only a linear head on fixed features can move) with MAML.
#
# ## 6. What the learned rates look like
#
# Meta-SGD learns one rate per parameter entry, MAML++ one per tensor and inner step.
# Both start at the benchmark's α everywhere. The shipped runs' rates (the printout under
# the figure gives Meta-SGD's per tensor: between 22% and 57% of each weight tensor's and
# hidden bias's entries end negative, and so does the head's single bias — a step *up*
# their gradient;
# Li et al. (2017, abstract) meta-learn the update's direction as well as its size):

# %%
learners = shipped_learners()
rates_summary = {}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), constrained_layout=True)
if "metasgd" in learners:
    msgd = learners["metasgd"].inner_lr
    labels = [f"layer {i} {n}" for i, layer in enumerate(msgd) for n in ("w", "b")]
    values = [np.asarray(layer[n]).ravel() for layer in msgd for n in ("w", "b")]
    axes[0].boxplot(values, showfliers=False)
    axes[0].set_xticks(np.arange(1, len(labels) + 1), labels, fontsize=8, rotation=20)
    axes[0].axhline(0.01, color="k", ls=":", label="start: α = 0.01")
    axes[0].set(ylabel="learned rate", title="Meta-SGD: rates per entry, by tensor (box: quartiles, whiskers 1.5 IQR)")
    axes[0].legend(fontsize=8)
    rates_summary["metasgd"] = {lab: {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
                                      "negative_fraction": float((v < 0).mean())} for lab, v in zip(labels, values)}
if "mamlpp" in learners:
    lslr = learners["mamlpp"].inner_lr
    for i, layer in enumerate(lslr):
        for n, style in (("w", "-"), ("b", "--")):
            r = np.asarray(layer[n])
            axes[1].plot(np.arange(1, len(r) + 1), r, style, marker="o", color=f"C{i}", label=f"layer {i} {n}")
            rates_summary.setdefault("mamlpp", {})[f"layer {i} {n}"] = r.tolist()
    axes[1].axhline(0.01, color="k", ls=":", label="start: α = 0.01")
    axes[1].set(xlabel="inner step", ylabel="learned rate", title="MAML++ (LSLR): one rate per tensor and step")
    axes[1].legend(fontsize=7, ncol=2)
plt.show()
for name, per_tensor in rates_summary.items():
    if name == "metasgd":
        for lab, s in per_tensor.items():
            print(f"Meta-SGD {lab:>11}: median {s['median']:+.4f}, range [{s['min']:+.3f}, {s['max']:+.3f}], "
                  f"{100 * s['negative_fraction']:.0f}% negative")

# %% [markdown]
# ## 7. Your own model: Flax NNX and Equinox
#
# Everything above takes `params` as any pytree and `loss_fn(params, batch)`. A Flax
# NNX module becomes that with `nnx.split` (a static graph definition and a `State`
# pytree of arrays) and back with `nnx.merge`; an Equinox module with `eqx.partition`
# and `eqx.combine`. Nothing in minimaml changes (tests/test_own_model.py runs both
# and checks they give the same meta-gradient as minimaml's own MLP with the same
# weights). Both libraries are in the `notebooks` extra (which the Colab cell installs
# and `dev` includes); this section is skipped if they are not installed.

# %%
own_model = {}
try:
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.layer1, self.layer2 = nnx.Linear(1, 40, rngs=rngs), nnx.Linear(40, 40, rngs=rngs)
            self.head = nnx.Linear(40, 1, rngs=rngs)

        def __call__(self, x):
            return self.head(jax.nn.relu(self.layer2(jax.nn.relu(self.layer1(x)))))

    model = MLP(nnx.Rngs(seed))
    graphdef, state = nnx.split(model)                                    # State: a pytree
    nnx_loss = mse_loss(lambda params, x: nnx.merge(graphdef, params)(x))
    trained_state, _, nnx_losses = train.meta_train(state, nnx_loss, sampler, train_key,
                                                    meta_steps=own_model_steps, inner_lr=0.01)
    nnx.update(model, trained_state)                                       # back into the module
    head_only = lambda path, leaf: path[0].key == "head"                   # ANIL by name
    anil_nnx, _, _ = family.meta_train("anil", state, nnx_loss, sampler, train_key, meta_steps=10,
                                       inner_lr=0.01, options={"head": head_only})
    own_model["flax_nnx"] = [float(nnx_losses[:50].mean()), float(nnx_losses[-50:].mean())]
    print(f"Flax NNX: meta-loss {own_model['flax_nnx'][0]:.3f} → {own_model['flax_nnx'][1]:.3f} "
          f"over {own_model_steps} steps; ANIL adapts {sum(anil_nnx.adapt)} of {len(anil_nnx.adapt)} tensors")
except ImportError:
    print("flax is not installed: pip install flax (or minimaml[notebooks])")

try:
    import equinox as eqx

    eqx_model = eqx.nn.MLP(1, 1, 40, 2, activation=jax.nn.relu, key=init_key)
    eqx_params, eqx_static = eqx.partition(eqx_model, eqx.is_array)
    eqx_loss = mse_loss(lambda params, x: jax.vmap(eqx.combine(params, eqx_static))(x))
    eqx_trained, _, eqx_losses = train.meta_train(eqx_params, eqx_loss, sampler, train_key,
                                                  meta_steps=own_model_steps, inner_lr=0.01)
    eqx_model = eqx.combine(eqx_trained, eqx_static)
    own_model["equinox"] = [float(eqx_losses[:50].mean()), float(eqx_losses[-50:].mean())]
    print(f"Equinox: meta-loss {own_model['equinox'][0]:.3f} → {own_model['equinox'][1]:.3f} over {own_model_steps} steps")
except ImportError:
    print("equinox is not installed: pip install equinox (or minimaml[notebooks])")

# %% [markdown]
# **BatchNorm's running statistics.** Not supported as trained state, and here is
# why. MAML's BatchNorm — the paper's code and our conv net — normalises with the
# current batch's statistics at training *and* at test time, so running averages are
# never read (Antoniou et al. 2019, §3, "Absence of Batch Normalization Statistic
# Accumulation", list this among MAML's problems). With NNX,
# split them out (`nnx.split(model, nnx.Param, nnx.BatchStat)`), merge them back with
# `copy=True` inside `apply`, and use `BatchNorm(use_running_average=False)`: the model
# then behaves like the paper's (tests/test_own_model.py trains one). A model that
# *needs* running statistics (or MAML++'s per-step ones) would need `loss_fn` to return
# them (`has_aux`) and the training loop to carry them beside θ and Adam's state;
# `optimize` carries only those two, and we have not added a third.
#
# ## 8. When to pick which
#
# First the numbers this advice leans on, read from the shipped tables (one seed, one
# machine). The variants' settings are in the tables' settings column, and
# `benchmarks/family_results.py` says where each comes from: a paper's or its official
# code's where one gives it for the benchmark (on Omniglot, MAML++'s official config and
# the iMAML authors' example command), otherwise ours from a few short runs, not tuned:

# %%
def table_row(benchmark, name):
    row = shipped.get(benchmark, {}).get("results", {}).get(name)
    return row if row and "failed" not in row else None

compare = {}
maml_sin, maml_omni = table_row("sinusoid", "maml"), table_row("omniglot", "maml")
for name in family.ALGORITHMS:
    line = [f"{name:>8}:"]
    row = table_row("sinusoid", name)
    if row and maml_sin:
        own = int(row["settings"].split()[0])
        at = own if len(row["mse"]["10"]["mse"]) > own else min(max(own, 1), 10)   # its trained steps
        mse10 = row["mse"]["10"]["mse"][at]
        compare[f"sinusoid {name}"] = {"steps": at, "mse_k10": mse10, "ms_ratio": row["ms_per_step"] / maml_sin["ms_per_step"]}
        line.append(f"sinusoid K=10 after {at} step(s) {mse10:.3f} (MAML after 1: {maml_sin['mse']['10']['mse'][1]:.3f}); "
                    f"{row['ms_per_step'] / maml_sin['ms_per_step']:.2f}× MAML's ms/meta-step;")
    row = table_row("omniglot", name)
    if row and maml_omni:
        cpu_ms = lambda r: r["train_cpu_seconds"] / r["meta_steps"]    # the fair cost on a shared machine
        compare[f"omniglot {name}"] = {"accuracy": row["accuracy"], "ci95": row["ci95"], "meta_steps": row["meta_steps"],
                                       "cpu_ratio": cpu_ms(row) / cpu_ms(maml_omni),
                                       "cpu_seconds": row["train_cpu_seconds"]}
        line.append(f"Omniglot {100 * row['accuracy']:.1f}% in {row['meta_steps']:,} meta-steps, "
                    f"{cpu_ms(row) / cpu_ms(maml_omni):.2f}× MAML's CPU time per meta-step")
    print(" ".join(line))
omniglot_runs = {name: compare[f"omniglot {name}"] for name in family.ALGORITHMS if f"omniglot {name}" in compare}
by_accuracy = sorted(omniglot_runs, key=lambda n: -omniglot_runs[n]["accuracy"])
by_steps = sorted(omniglot_runs, key=lambda n: -omniglot_runs[n]["meta_steps"])
def overlap(a, b):
    """Do two runs' 95% intervals overlap?"""
    return abs(a["accuracy"] - b["accuracy"]) <= a["ci95"] + b["ci95"]

ranking = by_accuracy[:1]
for better, worse in zip(by_accuracy, by_accuracy[1:]):
    ranking += [" ≈ " if overlap(omniglot_runs[better], omniglot_runs[worse]) else " > ", worse]
budget = ", ".join(f"{n} {omniglot_runs[n]['cpu_seconds']:.0f}" for n in omniglot_runs)
print(f"Omniglot training CPU seconds (the budget's; iMAML's run was resumed once): {budget}")
print("Omniglot, in about the same CPU budget — by accuracy (≈: these two neighbours' 95% intervals overlap):", "".join(ranking))
print("Omniglot, in about the same CPU budget — by meta-steps reached:", " ≥ ".join(by_steps))

# %% [markdown]
# - **MAML** is the reference; start there when the model is small enough that the
#   second-order backward pass fits (chapter 5 measures its memory).
# - **FOMAML** when memory or time per step is the limit. It drops the Hessian term;
#   chapter 5 compares it with MAML with error bars, and the ratios above give its
#   cost per meta-step here: about half on Omniglot's conv net (CPU time per step);
#   on the sinusoid's small MLP the shipped table shows next to nothing saved, but
#   its ms column was timed on a loaded shared machine (BENCHMARKS.md, "The MAML
#   family: sinusoid": load 5–15, and the same ANIL training is timed there at 0.34
#   and 0.15 ms), so read section 3's ms column, timed in this kernel, for that one.
# - **Meta-SGD** when one fine-tuning step is all you will take: it learns the step
#   entry by entry, its one-step cells are its best, and on the sinusoid they beat MAML's
#   one step (K = 10: 0.203 against 0.371, printed above). Its rates are learned
#   for the number of steps it trained with; taken further they overshoot (the †
#   cells, and the printout of section 4). Train it with the number of steps you will
#   use at test time (the recipe's `inner_steps`); whether that removes the overshoot
#   is not measured here — it is the first "To explore" item below.
# - **ANIL** when the body's features can be shared and only a head needs to adapt:
#   its inner loop never differentiates the body (section 1), and Raghu et al. (2020,
#   §4) found it matched MAML on few-shot image classification; here, in the same
#   Omniglot CPU budget, it took over twice MAML's meta-steps and ended above MAML
#   (the printout above). Mind the step size when fine-tuning longer than it trained:
#   section 4 shows why its head can diverge.
# - **MAML++** when you will fine-tune for several steps: it trains the loss after each
#   of them and learns a rate per tensor and step (section 6). Give the rates an
#   Adam step matched to their size (`rate_meta_lr`, section 2) when α is small; past its trained steps the
#   learned rates are not promised to help (the † cells). It is the dearest per
#   meta-step of the first six on Omniglot (5.5× MAML's CPU time per step, the
#   ratios above; section 3's ms column times all seven in this kernel — the
#   sinusoid table's MAML++ ms was timed at a lower load than its other rows, so its
#   3.3× is not comparable: BENCHMARKS.md, "The MAML family: sinusoid"); in the Omniglot CPU budget it
#   reached far fewer meta-steps than MAML (180 against 990) and a lower accuracy (the
#   two rankings printed above) — a statement about that budget, not about MAML++
#   trained to the end; and it is three of the paper's six changes, on Omniglot two
#   (section 2).
# - **Reptile** when you want no meta-gradient at all — no second derivatives, no
#   query/support split — for instance with models or losses awkward to differentiate
#   twice. In our settings it ended far below MAML on Omniglot in the CPU budget (the
#   printout above); its paper's Omniglot runs (Nichol et al. 2018, appendix) use Adam
#   in the inner loop and 100,000 outer iterations.
# - **iMAML** when you want many inner steps with meta-gradient memory independent of
#   their number (Rajeswaran et al. 2019, abstract and §3) and a meta-gradient of the regularised
#   inner solution. Its meta-test here still stores every fine-tuning step, so the
#   Omniglot meta-test fine-tunes fewer tasks at a time (`minimaml.omniglot.sizes.eval_chunk`);
#   with 16 inner steps and CG per meta-step it is the dearest per meta-step in the
#   Omniglot table, and in the CPU budget it reached 180 meta-steps (MAML 990) and the
#   lowest accuracy of the seven, 56.5% (the printout above); after so few steps that
#   says little about where it would end. It has four settings to get right (λ, the inner solver's step and
#   count, CG steps) and its θ is tuned to the inner solver it trained with: fine-tune
#   it the same way (here, SGD at the α of its inner solve, as the authors' code does
#   at test time); the printout of section 4 shows what plain SGD at MAML's α does from
#   its θ.
#
# ## Exercises
#
# Each stub raises `NotImplementedError` until you fill it in; the `check_…` call under
# it runs your function on fresh inputs against the library's answer and says
# `correct`, `not yet`, or what differs. Solutions:
# `notebooks/solutions/08_beyond_maml.ipynb`.
#
# **1. Meta-SGD's inner step.** One step θ' = θ − α ∘ ∇L_support(θ), with `rates` a
# pytree shaped like `params` (one rate per entry).

# %% tags=["exercise"]
import jax

from minimaml.exercises.family import check_metasgd_step

def metasgd_step(params, loss_fn, support, rates):
    """θ − α ∘ ∇L_support(θ), entry by entry."""
    raise NotImplementedError  # your code here

check_metasgd_step(metasgd_step)

# %% [markdown]
# **2. ANIL's inner step.** One SGD step of size `inner_lr` on the last layer only;
# the other layers stay θ (`params` is a list of layers).

# %% tags=["exercise"]
import jax

from minimaml.exercises.family import check_head_only_step

def head_only_step(params, loss_fn, support, inner_lr):
    """params with only params[-1] moved by one SGD step on the support loss."""
    raise NotImplementedError  # your code here

check_head_only_step(head_only_step)

# %% [markdown]
# **3. iMAML's implicit meta-gradient, densely.** Given the inner solution φ, return
# (I + H/λ)⁻¹ ∇L_query(φ) as a pytree shaped like φ, H the Hessian of the support loss
# at φ (`ravel_pytree` flattens; `jax.hessian` and `jnp.linalg.solve` do the rest).

# %% tags=["exercise"]
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from minimaml.exercises.family import check_implicit_gradient

def implicit_gradient(phi, loss_fn, support, query, reg):
    """(I + H/reg)⁻¹ ∇L_query(φ), H = ∇²L_support(φ), as a pytree like φ."""
    raise NotImplementedError  # your code here

check_implicit_gradient(implicit_gradient)

# %% [markdown]
# **To explore** (no check): train Meta-SGD with `inner_steps=5` (an option of the
# recipe) — do its 5- and 10-step cells still diverge? Rerun the race of section 3 with
# iMAML's `reg` at 2, 5 and 20. Time `jax.grad(maml_objective)` with and without
# `adapt=[False, False, True]` for 5 inner steps (chapter 4's timing helper), then read
# the ANIL row's ms in the Omniglot table, where the body is four conv layers. Write a
# two-phase `optimize_schedule` that trains FOMAML for the first half and MAML for the
# second.

# %%
summary = {
    "meta_steps": meta_steps,
    "race": {name: {k: v for k, v in r.items() if k not in ("losses", "learned")} for name, r in race.items()},
    "scan_carry": {"all": carry_all, "head_only": carry_head},
    "dot_generals_per_step": {"all": dots_all, "head_only": dots_head},
    "head_only_body_moved": body_moved,
    "knob_support_loss": knob_support_loss,
    "imaml_dense_max_abs_diff": imaml_gap,
    "mamlpp_phases": [[until, bool(o.first_order)] for until, o in mamlpp_plan.schedule],
    "mamlpp_first_rate_step": one_step,
    "mamlpp_same_beta": same_beta,
    "shipped_tables": sorted(shipped),
    "rates_summary": rates_summary,
    "past_trained": past_trained,
    "head_curvature": head_curvature,
    "imaml_alpha": imaml_alpha,
    "own_model": own_model,
    "compare": compare,
}
if results_path:
    pathlib.Path(results_path).write_text(json.dumps(summary, indent=1))
