# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 3 — MAML on sinusoids: the paper's experiment, reproduced
#
# **What you will learn.** How MAML meta-trains on a distribution of tasks p(T), what
# the "pretrained" baseline of the paper is and why it fails, and how the *meta-test*
# protocol measures the result: fresh tasks, a fixed fine-tuning budget, error bars.
# We run the paper's full configuration — 70,000 meta-steps — on the CPU (about a
# minute with `minimaml`), then reproduce the paper's Fig. 2 and Fig. 3 and put our
# numbers next to the paper's.

# %% tags=["parameters"]
meta_steps = 70_000    # the paper's number of meta-iterations
meta_batch = 25        # tasks per meta-step
support_size = 10      # K during meta-training (the paper trains K=10 for this figure)
query_size = 10        # query points per training task
inner_lr = 0.01        # α
meta_lr = 1e-3         # β (Adam)
eval_tasks = 600       # fresh tasks per K at meta-test
seed = 0
results_path = None

# %%
import json
import pathlib

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from minimaml import sinusoid

plt.rcParams.update({"figure.dpi": 75, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## 1. Learning from many tasks
#
# Chapter 1 had one task and too few points. MAML has a stream of tasks: every
# meta-step draws a **meta-batch** of tasks from p(T) (random amplitude and phase),
# each with K support and Q query points. For each task it adapts θ with one SGD step
# of size α on the support set and measures the adapted θ' on the query set; Adam
# with learning rate β then moves θ to lower the mean of those query losses
# (Algorithm 1 and Eq. 1 of the paper; chapter 2 showed the gradient).
#
# | paper | code |
# |---|---|
# | p(T), a batch of tasks T_i ~ p(T) | `sinusoid.sample_tasks(key, meta_batch, support_size, query_size)` |
# | meta-batch size (25 for sinusoids) | `meta_batch` |
# | β, the meta step size | `meta_lr` (Adam, as in the paper) |
# | the meta-update θ ← θ − β∇_θ Σ_i L_Ti(f_θ'_i) | one step of `minimaml.train.meta_train` |
#
# Here is what one meta-batch looks like (6 of its 25 tasks):

# %%
config = sinusoid.Config(meta_steps=meta_steps, meta_batch=meta_batch, support_size=support_size,
                         query_size=query_size, inner_lr=inner_lr, meta_lr=meta_lr,
                         eval_tasks=eval_tasks, seed=seed).validate()
example = sinusoid.sample_tasks(jax.random.key(seed + 1), meta_batch, support_size, query_size)
grid = jnp.linspace(-5, 5, 200)[:, None]

fig, axes = plt.subplots(1, 6, figsize=(15, 2.3), sharey=True, constrained_layout=True)
for i, ax in enumerate(axes):
    ax.plot(grid[:, 0], sinusoid.sine(grid[:, 0], example.amplitude[i], example.phase[i]), "k-", lw=1)
    ax.plot(example.support_x[i, :, 0], example.support_y[i, :, 0], "C0^", label="support")
    ax.plot(example.query_x[i, :, 0], example.query_y[i, :, 0], "C1o", mfc="none", label="query")
    ax.set_title(f"A={float(example.amplitude[i]):.1f}, φ={float(example.phase[i]):.1f}", fontsize=9)
axes[0].legend(fontsize=7)
plt.show()

# %% [markdown]
# ## 2. Meta-train MAML and the pretrained baseline
#
# The paper's baseline, **pretrained**, sees the very same task stream and optimiser
# but minimises the loss of θ *itself* on each task — ordinary regression on all
# tasks pooled — with no inner step inside the objective. At test time it is
# fine-tuned exactly like MAML. `sinusoid.train` runs both from the same
# initialisation; each meta-step is jitted and 1,000 of them run inside one
# `lax.scan` (chapter 4 explains why that matters).

# %%
maml_params, pretrained_params, history = sinusoid.train(config)
print(f"MAML:       {meta_steps} meta-steps in {history['maml_seconds']:.1f} s "
      f"({1e3 * history['maml_seconds'] / meta_steps:.2f} ms/step, compilation included)")
print(f"pretrained: {meta_steps} steps in {history['pretrained_seconds']:.1f} s")

# %%
def moving_mean(x, window):
    return np.convolve(x, np.ones(window) / window, mode="valid")

window = max(1, meta_steps // 200)
fig, ax = plt.subplots(figsize=(7, 3.2))
for name, color in (("maml", "C0"), ("pretrained", "C7")):
    losses = history[f"{name}_losses"]
    ax.plot(np.arange(window, len(losses) + 1), moving_mean(losses, window), color=color,
            label={"maml": "MAML: query loss after 1 inner step", "pretrained": "pretrained: loss at θ"}[name])
ax.set(yscale="log", xlabel="meta-step", ylabel=f"training loss (mean of {window})",
       title="Meta-training")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The two curves measure different things, so do not compare their heights: MAML's is
# the query loss *after* one adaptation step, the baseline's is the loss *before* any.
# The baseline's loss stalls near the variance of the task family: averaged over
# random phases, sine waves cancel, and the best single function for all tasks at
# once is close to zero everywhere.
#
# ## 3. The meta-test: fresh tasks, a fixed budget
#
# The training loss is not the result. It is measured on tasks in the training
# stream, with the one step the objective was built for. The question the paper asks
# is different: *given a new task and K points, how good is the model after n
# gradient steps?* So the meta-test (`sinusoid.evaluate`, built on
# `minimaml.evaluate.finetune_curves`):
#
# - draws `eval_tasks` **fresh** tasks per K from a seed that training never used;
# - fine-tunes a copy of θ on each task's K support points with plain SGD of step α,
#   the same points at every step, for a **fixed budget** of 0 to 10 steps — the same
#   budget for both models, so neither gets more compute;
# - measures MSE on 100 **held-out** query points of that task, and reports the mean
#   over tasks with a 95% confidence interval (1.96 · std / √n).
#
# This is the meta-test stage of the paper, separate from the "test" that is embedded
# in each training step (the query set).

# %%
metrics = {"maml": sinusoid.evaluate(maml_params, config),
           "pretrained": sinusoid.evaluate(pretrained_params, config)}

# The paper's K=5 numbers (Table 2): MSE after 1, 5 and 10 gradient steps.
paper_k5 = {"maml": {1: 0.67, 5: 0.38, 10: 0.35}, "pretrained": {1: 2.41, 5: 2.23, 10: 2.19}}

rows = ["| model | K | steps | ours (mean ± 95% CI) | paper |", "|---|---|---|---|---|"]
for name in ("maml", "pretrained"):
    for steps in (1, 5, 10):
        res = metrics[name]["5"]
        rows.append(f"| {name} | 5 | {steps} | {res['mse'][steps]:.3f} ± {res['ci95'][steps]:.3f} "
                    f"| {paper_k5[name][steps]:.2f} |")
display(Markdown("\n".join(rows)))
display(Markdown("All of our K:\n\n" + "\n\n".join(sinusoid.format_table(metrics, shots)
                                                    for shots in ("5", "10", "20"))))

# %% [markdown]
# ## 4. Fig. 3: error against fine-tuning steps
#
# The paper's Fig. 3 plots this meta-test for K = 5, 10 and 20. MAML was trained with
# *one* inner step, yet keeps improving with more steps, and never overfits its K
# points within the budget. The pretrained model improves slowly: its starting point
# knows nothing about the task.

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4), sharey=True, constrained_layout=True)
for ax, shots in zip(axes, ("5", "10", "20")):
    for name, color, label in (("maml", "C0", "MAML (ours)"), ("pretrained", "C7", "pretrained")):
        res = metrics[name][shots]
        n = np.arange(len(res["mse"]))
        ax.errorbar(n, res["mse"], yerr=res["ci95"], color=color, marker="o", ms=3, capsize=2, label=label)
    if shots == "5":
        for name, color in (("maml", "C0"), ("pretrained", "C7")):
            steps = list(paper_k5[name])
            ax.plot(steps, [paper_k5[name][s] for s in steps], "x", color=color, ms=10, mew=2,
                    label=f"paper, {name}")
    ax.set(title=f"K = {shots}", xlabel="number of gradient steps")
    ax.legend(fontsize=8)
axes[0].set_ylabel(f"query MSE, {eval_tasks} fresh tasks")
plt.show()

# %% [markdown]
# ## 5. Fig. 2: adapting to K = 5 and K = 10 points
#
# The paper's Fig. 2 shows single tasks: the prediction before adaptation, after one
# step and after ten. We draw one task of large amplitude (easier to see) and show
# its first 5 and first 10 points. MAML's θ before adaptation is not a fit to
# anything in particular — it is a starting point from which one step of size α
# lands close to the right sine. The pretrained model starts from its compromise
# curve, and the same step barely moves it.

# %%
amp, phase = 4.0, 2.0       # a task of our choosing; its points are random
task_x = jax.random.uniform(jax.random.fold_in(jax.random.key(seed), 20_000), (10, 1), minval=-5, maxval=5)
task_y = sinusoid.sine(task_x, amp, phase)
fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharex=True, sharey=True, constrained_layout=True)
for row, shots in enumerate((5, 10)):
    sx, sy = task_x[:shots], task_y[:shots]
    for col, (name, params, color) in enumerate((("MAML", maml_params, "C0"),
                                                 ("pretrained", pretrained_params, "C7"))):
        ax = axes[row, col]
        preds = sinusoid.adaptation_predictions(params, sx, sy, grid, inner_lr, 10)
        ax.plot(grid[:, 0], sinusoid.sine(grid[:, 0], amp, phase), "r-", lw=2, label="ground truth")
        for n, style in ((0, ":"), (1, "--"), (10, "-")):
            ax.plot(grid[:, 0], preds[n, :, 0], style, color=color,
                    label="pre-update" if n == 0 else f"{n} grad step{'s' * (n > 1)}")
        ax.plot(sx[:, 0], sy[:, 0], "k^", ms=8, label="used for grad")
        ax.set(title=f"{name}, K={shots}", ylim=(-6, 6))
        ax.legend(fontsize=7, loc="lower left")
plt.show()

# %% [markdown]
# ## What we found
#
# Where does the paper's K = 5 number fall relative to our 95% confidence interval?
# (Computed from this run, so it stays true if you change the parameters.)

# %%
verdicts = {}
lines = []
for name in ("maml", "pretrained"):
    res = metrics[name]["5"]
    for steps in (1, 5, 10):
        ours, ci, paper = res["mse"][steps], res["ci95"][steps], paper_k5[name][steps]
        where = ("inside our CI" if abs(paper - ours) <= ci
                 else "below our CI: the paper's is better" if paper < ours
                 else "above our CI: ours is better")
        verdicts[f"{name}_{steps}"] = where
        lines.append(f"- {name}, {steps} step{'s' * (steps > 1)}: ours {ours:.3f} ± {ci:.3f}, "
                     f"paper {paper:.2f} — {where}")
gain = metrics["pretrained"]["5"]["mse"][1] / metrics["maml"]["5"]["mse"][1]
lines.append(f"- after one step at K = 5, MAML's error is {gain:.1f}× smaller than the pretrained model's")
display(Markdown("\n".join(lines)))

# %% [markdown]
# The shape of the paper's result reproduces: one step from MAML's θ removes most of
# the error, more steps keep helping, and the pretrained baseline stays far behind at
# every K. In the full-size run committed with this notebook, our one-step K = 5 error
# agrees with the paper's while our 5- and 10-step K = 5 errors are higher than the
# paper's; at K = 10 and K = 20 the curves keep falling well below K = 5's. We have not
# isolated the cause of the K = 5 gap. Differences we know of:
#
# - We meta-train once at K = 10 and meta-test that one θ at K = 5, 10 and 20; the
#   paper does not say which K its K = 5 model was trained with.
# - The paper fine-tunes the pretrained model with step 0.02 for K = 10 and 20; we use
#   α = 0.01 for every model and K, so the comparison is at equal budget. Try
#   `sinusoid.evaluate(pretrained_params, config, inner_lr=0.02)`.
# - The paper's text says α = 0.01; the official code's sinusoid command ran with
#   0.001. We follow the text. Run the official way (`--inner-lr 0.001`), the
#   README records K = 5 errors of 0.80 / 0.41 / 0.37 after 1 / 5 / 10 steps: worse
#   than the paper after one step, within our CI of its 0.38 / 0.35 after 5 and 10.
#
# ## 6. Watch your θ adapt
#
# The playground of chapter 7, fed the parameters this notebook just meta-trained
# (`maml_params`) and its pretrained baseline. Move K, α and the steps; ▶ animates
# the fine-tuning. It needs a live kernel; a saved copy shows a still picture.

# %%
from minimaml.widgets import playground

playground(maml_params=maml_params, pretrained_params=pretrained_params, seed=seed)

# %% [markdown]
# ## Try this
#
# - Put all K = 5 support points in one half of the range (e.g. x ∈ [−5, 0]) and adapt
#   MAML's θ. The paper's Fig. 2 claims it still recovers the other half. Does it?
# - Meta-train with `support_size = 5` and meta-test at K = 5: better than training
#   at K = 10? (When we tried it, 10 fine-tuning steps at α = 0.01 diverged on one
#   of the 600 meta-test tasks; `sinusoid.evaluate` counts such tasks in
#   `diverged_tasks` and leaves them out. What does a smaller α do?)
# - Train with 2 or 5 inner steps (`sinusoid.Config(inner_steps=5)`): does the
#   10-step error fall further?
# - Save the parameters with `sinusoid.save_params("maml.npz", maml_params)` and load
#   them in chapter 7's playground.

# %%
summary = {
    "meta_steps": meta_steps,
    "train_seconds": {"maml": history["maml_seconds"], "pretrained": history["pretrained_seconds"]},
    "final_training_loss": {name: float(np.mean(history[f"{name}_losses"][-1000:]))
                            for name in ("maml", "pretrained")},
    "metrics": metrics,
    "paper_k5": paper_k5,
    "verdicts": verdicts,
}
if results_path:
    pathlib.Path(results_path).write_text(json.dumps(summary, indent=1))
