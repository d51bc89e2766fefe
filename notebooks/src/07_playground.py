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
#   trained with the paper's config, 70,000 meta-steps),
# - **pretrained** — one network trained to regress *all* tasks at once, the paper's
#   baseline,
# - **random** — a fresh network, what chapter 1 started from.
#
# Move the sliders and watch: **K** (how many labelled points the task gives),
# **α** (the inner step size, on a log scale), **steps** (how many SGD steps have been
# taken; ▶ animates them), **new task** (another amplitude and phase). The right-hand
# plot is each network's error on 100 fresh points of the task after every step
# 0…50; the readout under it gives the numbers at the current step.
#
# Nothing here retrains anything: every slider move re-runs (or just indexes) the
# inner loop of `minimaml.maml`, the same one chapter 3 meta-trained through. The
# kernel sends the numbers and your browser draws them (BENCHMARKS.md, "Widget
# latency", has how long a move takes from key press to screen). The widget needs a
# live kernel; a saved copy shows a still picture whose title gives the settings.
# For a lecture, `make playground` serves this playground and an Omniglot one as a
# standalone page (no code on it).

# %% tags=["parameters"]
seed = 0              # picks the tasks of section 3 (and its random initialisation)
own_meta_steps = 5000 # meta-training steps for "bring your own parameters" below
results_path = None   # the tests set this to collect a JSON summary

# %% [markdown]
# ## 1. The playground
#
# The first time, JAX compiles the 50-step fine-tuning of the three networks (the
# widget says "compiling…" meanwhile); after that no slider move compiles anything.
# This cell runs on its own, e.g. after a kernel restart.

# %% tags=["widget"]
from minimaml.widgets import playground   # MAML and pretrained θ: the shipped ones

playground(seed=0)

# %% [markdown]
# ## 2. Try this
#
# - **Steps 0 → 1.** Set steps to 0: each network predicts what it predicts for
#   *every* task — the random one ≈ 0, MAML and pretrained roughly the average of all
#   the tasks' sine waves (the phases lie in [0, π], so that average is not zero).
#   Now take one step: MAML's curve jumps onto the task, the others barely move.
#   That single step is what MAML was trained to make count.
# - **K = 1…5.** Even from a handful of points MAML recovers a whole sine wave,
#   including the part of x where it saw no point. The pretrained network has no
#   such prior to fall back on.
# - **Press ▶.** Over 50 steps the pretrained network creeps towards the points;
#   MAML is most of the way there after the first few steps.
# - **α up.** MAML was meta-trained for α = 0.01. Push α to 0.05–0.1 and its
#   fine-tuning *diverges* within a few steps (the widget says so, and the lines run
#   along the plot's edge): the meta-learned initialisation sits where the support
#   loss is steep, so that one small step moves far. The pretrained network
#   tolerates larger steps.
# - **α down.** At α = 0.001 nobody moves much in 50 steps: MAML's advantage is not a
#   better optimiser, it is a better starting point *for this optimiser and step
#   size*.
#
# ## 3. The numbers behind the picture
#
# The widget shows one task at a time. `minimaml.widgets.adapt` is the computation
# behind it (all 51 steps at once), so we can average it over many tasks of the same
# stream: query MSE after 0, 1 and 10 steps with α = 0.01.

# %%
import json
import pathlib

import jax
import numpy as np

from minimaml import sinusoid
from minimaml.widgets import adapt, load_shipped_params, sample_task

maml_params, pretrained_params = load_shipped_params()
random_params = sinusoid.init_params(jax.random.fold_in(jax.random.key(seed), 1))
inits = {"MAML": maml_params, "pretrained": pretrained_params, "random": random_params}
tasks = [sample_task(seed, index) for index in range(50)]

table = {}
for shots in (5, 10):
    for name, params in inits.items():
        curves = np.array([adapt(params, task, shots, 0.01).query_mse for task in tasks])
        table[f"{name} K={shots}"] = {n: float(curves[:, n].mean()) for n in (0, 1, 10)}

print(f"{'':>16} {'0 steps':>8} {'1 step':>8} {'10 steps':>8}")
for row, mse in table.items():
    print(f"{row:>16} {mse[0]:8.3f} {mse[1]:8.3f} {mse[10]:8.3f}")

# %% [markdown]
# The MAML rows drop by an order of magnitude after a single step; the pretrained
# rows move a little; the random network hardly at all at this α. (Chapter 3
# measures the same thing on 600 tasks with confidence intervals, as the paper does.)
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

# %% [markdown]
# With a few thousand meta-steps instead of 70,000, MAML's one-step fit is already
# far better than the pretrained one, but rougher than the shipped parameters'. Set
# `own_meta_steps` to 70000 (about half a minute) to reproduce the shipped file.

# %% [markdown]
# ## 5. More widgets, where their ideas are taught
#
# Each is one call, runs on its own, and loads the shipped θ it needs (saying so):
# `second_order_explorer()` (chapter 2: the second- and first-order meta-gradients,
# per layer, as α changes), `meta_training_scrubber()` (chapter 3: θ along a
# meta-training run), `first_vs_second_order()` (chapter 5) and
# `omniglot_adaptation()` (chapter 6: a meta-trained conv net on new characters).

# %%
own = {name: float(data.query_mse) for name, data in mine.current.items()}
print("query MSE on the first task, K=10, α=0.01, 10 steps:",
      {name: round(v, 3) for name, v in own.items()})
summary = {"table": table, "own_meta_steps": own_meta_steps, "own_first_task": own}
if results_path:
    pathlib.Path(results_path).write_text(json.dumps(summary, indent=1))
