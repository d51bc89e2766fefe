# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 7 — Playground: watch fine-tuning happen
#
# **What this is.** One sinusoid task, three networks fine-tuning on its K support
# points with plain SGD, side by side:
#
# - **MAML** — the initialisation meta-learned in chapter 3 (the package ships one
#   trained with the paper's configuration (Section 5.1) for 70,000 meta-steps, the
#   official code's sinusoid budget (`--metatrain_iterations=70000`, as chapter 3
#   says); `minimaml/data/README.md` says how it was made),
# - **pretrained** — one network trained to regress *all* tasks at once, the paper's
#   baseline (Section 5.1),
# - **random** — a fresh network, what chapter 1 started from.
#
# Move the sliders and watch: **K** (how many labelled points the task gives),
# **α** (the inner step size, on a log scale), **steps** (how many SGD steps have been
# taken; ▶ animates them), **new task** (another amplitude and phase). The right-hand
# plot is each network's error on 100 fresh points of the task after every step
# 0…50; the readout under it gives the numbers at the current step.
#
# No slider move retrains anything: each re-runs (or just indexes) the inner loop
# of `minimaml.maml`, the same one chapter 3 meta-trained through. The
# kernel sends the numbers and your browser draws them (BENCHMARKS.md, "Widget
# latency", has how long a move takes from key press to screen). The widget needs a
# live kernel; a saved copy shows a still picture whose title gives the settings.
# For a lecture, `make playground` serves this playground and an Omniglot one as a
# standalone page (no code on it).

# %% tags=["parameters"]
seed = 0              # picks the tasks of section 3 (and its random initialisation)
own_meta_steps = 5000 # meta-training steps for "bring your own parameters" below
num_tasks = 50        # tasks averaged in "the numbers behind the picture"
results_path = None   # the tests set this to collect a JSON summary

# %%
import math

import jax
import numpy as np
from IPython.display import Markdown, display

from minimaml import sinusoid
from minimaml.nets import mlp_apply
from minimaml.widgets import adapt, diverged_at, load_shipped_params, playground, sample_task

# %% [markdown]
# ## 1. Try it live
#
# The first time, JAX compiles the 50-step fine-tuning of the three networks (the
# widget says "compiling…" meanwhile); after that no slider move compiles anything
# (`tests/test_widgets.py` counts the compilations; BENCHMARKS.md, "Widget latency",
# gives the time of that first draw). The widget cell runs on its own, e.g. after a
# kernel restart.

# %% tags=["widget"]
from minimaml.widgets import playground   # MAML and pretrained θ: the shipped ones

playground(seed=0)

# %% [markdown]
# ## 2. What to look for
#
# Each item below names something to try on the widget; section 3 measures the same
# thing over many tasks, so you can check what you see against the numbers.
#
# - **Steps 0 → 1.** At steps = 0 each network predicts what it predicts for *every*
#   task. For the random one that is ≈ 0 (its weights are tiny: chapter 2, section 6).
#   The pretrained one approximates the best single function for all tasks,
#   f*(x) = −(2/π)·E[A]·cos x ≈ −1.62·cos x (chapter 3, section 3, derives it: the
#   phases lie in [0, π], so the average sine wave is not zero; section 3 of this
#   chapter compares the two at x = 0). Now take one step and compare how far each curve moves.
# - **K = 1…5.** How few points does MAML need?
# - **Press ▶.** Over 50 steps, which network gets most of its way in the first few?
# - **α up.** MAML was meta-trained for α = 0.01. Push α towards 0.1 and watch for
#   fine-tuning that *diverges* (the widget says so and clips the lines; section 3
#   counts the diverged tasks). Chapter 3, section 6, measures the curvature behind
#   this: on a quadratic, a step of α is stable only for α < 2/λ_max, and at MAML's θ
#   most K = 5 tasks' largest curvature λ_max is above 2/α already at α = 0.01 (that
#   section prints the share). The loss is not quadratic, so that limit is only a local
#   guide: at α = 0.01 only some of the tasks past it overshoot within ten steps, and
#   far fewer blow up (that section counts both). The larger α, the more tasks are past
#   the limit.
# - **α down.** At α = 0.001, how far does anyone get in 50 steps?
#
# ## 3. The numbers behind the picture
#
# `minimaml.widgets.adapt` is the computation behind the widget (steps 0 to 50 at
# once), so we can average it over many tasks of the same stream.

# %%
maml_params, pretrained_params = load_shipped_params()
random_params = sinusoid.init_params(jax.random.fold_in(jax.random.key(seed), 1))
inits = {"MAML": maml_params, "pretrained": pretrained_params, "random": random_params}
tasks = [sample_task(seed, index) for index in range(num_tasks)]

def mean_curves(inits, tasks, shots, inner_lr):
    """Per initialisation: the query-MSE curve over steps 0..50, averaged over the tasks,
    and how many tasks diverged (the widget's rule)."""
    out = {}
    for name, params in inits.items():
        runs = [adapt(params, task, shots, inner_lr) for task in tasks]
        diverged = [diverged_at(run) is not None for run in runs]
        kept = np.array([run.query_mse for run, bad in zip(runs, diverged) if not bad])
        out[name] = {"curve": kept.mean(axis=0) if len(kept) else None, "diverged": int(sum(diverged))}
    return out

table, table_diverged = {}, {}
for shots in (5, 10):
    for name, result in mean_curves(inits, tasks, shots, 0.01).items():
        table[f"{name} K={shots}"] = {n: float(result["curve"][n]) for n in (0, 1, 3, 10, 50)}
        table_diverged[f"{name} K={shots}"] = result["diverged"]

print(f"query MSE, mean over the {num_tasks} tasks less those that diverged, α = 0.01")
print(f"{'':>16} {'0 steps':>8} {'1 step':>8} {'3 steps':>8} {'10 steps':>8} {'50 steps':>8} {'diverged':>9}")
for row, mse in table.items():
    print(f"{row:>16} " + " ".join(f"{mse[n]:8.3f}" for n in (0, 1, 3, 10, 50)) + f" {table_diverged[row]:9d}")

# %%
f_star_0 = -2 / math.pi * sum(sinusoid.AMPLITUDE_RANGE) / 2
at_zero = {name: float(mlp_apply(params, np.zeros((1, 1), np.float32))[0, 0]) for name, params in inits.items()}
one_step = {name: table[f"{name} K=10"][0] / table[f"{name} K=10"][1] for name in inits}
first_three = {name: (table[f"{name} K=10"][0] - table[f"{name} K=10"][3]) /
               (table[f"{name} K=10"][0] - table[f"{name} K=10"][50]) for name in inits}
display(Markdown(
    f"- **Steps 0.** At x = 0: MAML {at_zero['MAML']:.2f}, pretrained {at_zero['pretrained']:.2f}, "
    f"random {at_zero['random']:.3f}; f*(0) = {f_star_0:.2f}.\n"
    f"- **Steps 0 → 1** (K = 10): one step divides the mean error by {one_step['MAML']:.1f} for MAML, "
    f"{one_step['pretrained']:.2f} for pretrained, {one_step['random']:.3f} for random "
    f"(K = 5: MAML {table['MAML K=5'][0] / table['MAML K=5'][1]:.1f}).\n"
    f"- **Press ▶** (K = 10): the first 3 of 50 steps give MAML {100 * first_three['MAML']:.0f}% of "
    f"its 50-step drop in error, pretrained {100 * first_three['pretrained']:.0f}%."))

# %%
few_shots, few_shots_diverged = {}, {}
for shots in range(1, 6):
    result = mean_curves({"MAML": maml_params, "pretrained": pretrained_params}, tasks, shots, 0.01)
    few_shots[shots] = {name: float(r["curve"][10]) for name, r in result.items()}
    few_shots_diverged[shots] = {name: r["diverged"] for name, r in result.items()}
alphas = {}
for inner_lr in (0.001, 0.01, 0.03, 0.1):
    result = mean_curves(inits, tasks, 10, inner_lr)
    alphas[inner_lr] = {name: {"diverged": r["diverged"],
                               "drop_50": None if r["curve"] is None else float(1 - r["curve"][50] / r["curve"][0])}
                        for name, r in result.items()}
lines = ["| K | " + " | ".join(f"{k}" for k in few_shots) + " |", "|---|" + "---|" * len(few_shots)]
for name in ("MAML", "pretrained"):
    lines.append(f"| {name}, after 10 steps | " + " | ".join(f"{few_shots[k][name]:.3f}" for k in few_shots) + " |")
maml_ahead = [k for k in few_shots if few_shots[k]["MAML"] < few_shots[k]["pretrained"]]
display(Markdown("**K = 1…5**, query MSE after 10 steps of α = 0.01:\n\n" + "\n".join(lines)
                 + f"\n\nMAML's error is below the pretrained net's at K = "
                 + (", ".join(map(str, maml_ahead)) or "none of them")
                 + (f" and above it at K = {', '.join(str(k) for k in few_shots if k not in maml_ahead)}"
                    if len(maml_ahead) < len(few_shots) else "") + ". Tasks left out of these means "
                 + f"as diverged (of {num_tasks}): "
                 + (", ".join(f"{name} at K = {k}: {n}" for k, row in few_shots_diverged.items()
                              for name, n in row.items() if n) or "none") + "."))
lines = ["| α | " + " | ".join(f"{name}: diverged / error removed by 50 steps" for name in inits) + " |",
         "|---|" + "---|" * len(inits)]
for inner_lr, row in alphas.items():
    lines.append(f"| {inner_lr:g} | " + " | ".join(
        f"{r['diverged']} / " + ("—" if r["drop_50"] is None else f"{round(100 * r['drop_50']) + 0}%")
        for r in row.values()) + " |")
display(Markdown(f"**α**, K = 10, {num_tasks} tasks, 50 steps (a task diverges when its query MSE "
                 f"passes 1,000 or stops being finite; the error removed is over the others):\n\n" + "\n".join(lines)))

# %% [markdown]
# Every mean in this section leaves out the tasks whose fine-tuning diverged within the
# 50 steps, by the widget's rule: `mean_curves` averages only the others. All three
# tables say how many they left out.
#
# (Chapter 3 runs the full meta-test: 600 fresh tasks per K, 0 to 10 steps, with 95%
# confidence intervals as the paper's official code computes them — chapter 3,
# section 4.)
#
# ## 4. Bring your own parameters
#
# `playground` takes any sinusoid MLP parameters — for instance the ones you trained
# in chapter 3, or these: a shorter meta-training run (`own_meta_steps` in the
# parameters cell) of MAML and of the pretrained baseline.

# %%
from minimaml import sinusoid
from minimaml.widgets import playground

own_meta_steps = globals().get("own_meta_steps", 5000)   # the parameters cell's, if it ran
config = sinusoid.Config(meta_steps=own_meta_steps, seed=0)
my_maml, my_pretrained, history = sinusoid.train(config, progress=False)
print(f"meta-trained {own_meta_steps} steps in {history['maml_seconds']:.1f} s, "
      f"pretrained in {history['pretrained_seconds']:.1f} s")
mine = playground(my_maml, my_pretrained, seed=0)

# %%
own = mean_curves({"your MAML": my_maml, "your pretrained": my_pretrained, "shipped MAML": maml_params},
                  tasks, 10, 0.01)
own_table = {name: {n: float(r["curve"][n]) for n in (0, 1, 10)} for name, r in own.items()}
display(Markdown(f"Query MSE over the same {num_tasks} tasks, K = 10, α = 0.01:\n\n"
                 "| | 0 steps | 1 step | 10 steps |\n|---|---|---|---|\n"
                 + "\n".join(f"| {name} | " + " | ".join(f"{v[n]:.3f}" for n in (0, 1, 10)) + " |"
                             for name, v in own_table.items())))

# %% [markdown]
# Set `own_meta_steps` to 70000 to train with the shipped file's config: on a 2-core
# Xeon the 70,000 MAML steps took 22.5 s pinned to one core and 27.8 s on both
# (BENCHMARKS.md, section "Sinusoid meta-training speed"); the time printed above is
# this machine's for your number of steps. The same seed is promised to give the same
# numbers on one machine only: XLA's CPU kernels can differ between processor types
# (`minimaml/data/README.md` says on which machines the shipped files were made and
# reproduced bit for bit).
#
# ## Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell: the
# `check_…` call runs your function on fresh inputs against a reference and says
# `correct`, or what differs. Solutions: `notebooks/solutions/07_playground.ipynb`.
#
# **1. The largest stable step size.** Gradient descent with step α on a quadratic
# loss of curvature λ is stable only for α < 2/λ (for other losses only a local guide,
# as section 2 says). Return 2/λ_max for the support loss at `params`, with λ_max the
# largest-magnitude eigenvalue of its Hessian, found by power iteration with
# Hessian-vector products (chapter 2) — about 100 of them.

# %% tags=["exercise"]
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from minimaml.exercises.playground import check_stability_limit

def stability_limit(params, loss_fn, support):
    """2/λ_max, λ_max the largest |eigenvalue| of the Hessian of the support loss at params."""
    raise NotImplementedError  # your code here

check_stability_limit(stability_limit)

# %% [markdown]
# **2. What the widget draws**: the network's prediction on `x` after `steps` SGD
# steps of size `inner_lr` on the support set.

# %% tags=["exercise"]
from minimaml import maml, sinusoid
from minimaml.nets import mlp_apply
from minimaml.exercises.playground import check_adapted_prediction

def adapted_prediction(params, support, x, inner_lr, steps):
    """The network's prediction on x after `steps` SGD steps of size inner_lr on support."""
    raise NotImplementedError  # your code here

check_adapted_prediction(adapted_prediction)

# %% [markdown]
# ## 5. More widgets, where their ideas are taught
#
# Each is one call, runs on its own, and loads the shipped θ it needs (saying so):
# `second_order_explorer()` (chapter 2: the second- and first-order meta-gradients,
# per layer, as α changes), `meta_training_scrubber()` (chapter 3: θ along a
# meta-training run), `first_vs_second_order()` (chapter 5) and
# `omniglot_adaptation()` (chapter 6: a meta-trained conv net on new characters).

# %%
from minimaml.runs import write_results
write_results(results_path, table=table, at_zero=at_zero, f_star_0=f_star_0, one_step_factor=one_step, first_three_of_50=first_three, few_shots=few_shots, alphas=alphas, own=own_table, own_meta_steps=own_meta_steps)
