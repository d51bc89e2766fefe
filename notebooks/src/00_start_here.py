# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # minimaml — a notebook course on MAML, in JAX
#
# **Model-Agnostic Meta-Learning** (Finn, Abbeel & Levine, ICML 2017) asks how a
# model can learn a new task from a handful of examples. Its answer is to learn a
# good *starting point*: train the initial parameters θ on many related tasks so that,
# for a new task, a few gradient steps on a few examples (K "shots") already give a
# good model. The training signal is the error *after* adaptation: adapt θ to each
# task with an inner gradient step, measure the adapted model on held-out points of
# that task, and move θ to make that post-adaptation error small.
#
# Because the inner step is itself a gradient, MAML's meta-gradient is a *gradient of
# a gradient*; "model-agnostic" because nothing in it depends on the model beyond
# being trainable by gradient descent. In JAX the whole method is a few lines —
# `jax.grad` of a function that calls `jax.grad` — and this course builds it up from
# one sine wave to the paper's sinusoid and Omniglot experiments (its Sections 5.1 and
# 5.2), using the small `minimaml` library for the parts you have already seen written
# out.
#
# **Who this is for.** You know what gradient descent does and want to understand
# MAML from the inside — the paper's sinusoid results (Fig. 2, Fig. 3, and the MAML and
# pretrained rows of its Table 2, Appendix C.1) recomputed, each claim backed by a number the notebook
# computes or by a cited source — or you want to learn JAX's function transformations (`grad`
# of `grad`, `jvp`, `vmap`, `jit`) and its loop primitive `lax.scan` on a real problem.
#
# **What you need.** Python and NumPy; derivatives, the chain rule and a little linear
# algebra (a Hessian, a matrix-vector product); the basic idea of a neural network.
# JAX is introduced as it is used; the tutorials in JAX's own documentation are a good
# companion. Keep the paper at hand: the chapters
# cite its sections, figures and tables.
#
# ## What MAML buys, in one figure
#
# The package ships two sinusoid networks trained with the paper's configuration
# (Section 5.1) for 70,000 meta-steps of 25 tasks each: the official code's sinusoid
# command (`--metatrain_iterations=70000` in the usage notes at the top of its `main.py`,
# github.com/cbfinn/maml) and its default meta-batch
# (`minimaml/data/README.md` says how they were made; chapter 3 trains your own): one
# **meta-learned by MAML**, one **pretrained** on all tasks at once (the paper's
# baseline, Section 5.1). Beside them a **fresh** network. Each gets the same new task,
# the same K = 10 points and *one* step of plain gradient descent with the same step
# size α = 0.01 (the paper fine-tunes its pretrained baseline with a tuned step size,
# Section 5.1; chapter 3 comes back to that).

# %% tags=["parameters"]
seed = 0
shots = 10            # K
inner_lr = 0.01       # α, as in the paper
num_tasks = 200       # fresh tasks for the averages
results_path = None

# %%
import importlib.resources
import json
import pathlib

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import minimaml
from minimaml import maml, sinusoid
from minimaml.evaluate import finetune_curves, mean_ci95
from minimaml.nets import mlp_apply

plt.rcParams.update({"figure.dpi": 75, "axes.grid": True, "grid.alpha": 0.3})
print(f"minimaml {minimaml.__version__} from {minimaml.__file__}")
print(f"jax {jax.__version__}, devices: {jax.devices()}")

def shipped_params(name):
    """The sinusoid θ shipped in minimaml/data/ (see its README.md): 'maml' or 'pretrained'."""
    with importlib.resources.as_file(importlib.resources.files("minimaml") / "data" / f"sinusoid_{name}.npz") as path:
        return sinusoid.load_params(path)

inits = {"MAML": shipped_params("maml"), "pretrained": shipped_params("pretrained"),
         "fresh": sinusoid.init_params(jax.random.key(seed))}

# %%
task = sinusoid.sample_tasks(jax.random.fold_in(jax.random.key(seed), 1), 1, shots, 100)
support = (task.support_x[0], task.support_y[0])
grid = jnp.linspace(-5, 5, 200)[:, None]
truth = sinusoid.sine(grid[:, 0], task.amplitude[0], task.phase[0])

fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), constrained_layout=True, gridspec_kw={"width_ratios": [2, 1]})
ax = axes[0]
ax.plot(grid[:, 0], truth, "k-", lw=2, label="the task")
for (name, params), color in zip(inits.items(), ("C0", "C7", "C3")):
    adapted = maml.inner_loop(params, sinusoid.sine_loss, support, inner_lr, 1)
    ax.plot(grid[:, 0], mlp_apply(params, grid)[:, 0], ":", color=color, lw=1)
    ax.plot(grid[:, 0], mlp_apply(adapted, grid)[:, 0], "-", color=color, label=f"{name}, after one step")
ax.plot(support[0][:, 0], support[1][:, 0], "k^", ms=8, label=f"the K = {shots} points")
ax.set(xlabel="x", ylabel="y", ylim=(-6, 6), title="one new task (dotted: before the step)")
ax.legend(fontsize=8, loc="lower left")

tasks = sinusoid.sample_tasks(jax.random.fold_in(jax.random.key(seed), 2), num_tasks, shots, 100)
one_step = {}
for name, params in inits.items():
    curves = finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, inner_lr, 1)
    mean, ci = mean_ci95(curves)
    one_step[name] = {"before": float(mean[0]), "after": float(mean[1]), "ci95": float(ci[1])}
ax = axes[1]
names = list(one_step)
ax.bar(names, [one_step[n]["after"] for n in names], yerr=[one_step[n]["ci95"] for n in names],
       color=["C0", "C7", "C3"], capsize=4)
ax.set(ylabel="query MSE after one step", title=f"mean over {num_tasks} new tasks (95% CI)")
plt.show()
display(Markdown("After one step: " + "; ".join(
    f"**{n}** {v['after']:.2f} ± {v['ci95']:.2f} (before: {v['before']:.2f})" for n, v in one_step.items())
    + f". MAML's error after one step is {one_step['pretrained']['after'] / one_step['MAML']['after']:.1f}× "
    f"smaller than the pretrained network's and {one_step['fresh']['after'] / one_step['MAML']['after']:.1f}× "
    f"smaller than the fresh one's."))

# %% [markdown]
# ## MAML at a glance
#
# The paper's Fig. 1 draws θ moving, during meta-learning, to a point from which one
# gradient step heads toward each task's own optimum θ\*ᵢ. Here is that picture computed
# rather than drawn: three tasks whose losses are bowls in a two-parameter space,
# L_i(θ) = ½ (θ − θ\*ᵢ)ᵀ Aᵢ (θ − θ\*ᵢ), each curved differently. The thick line is θ
# during meta-training with the library's `maml.maml_objective`; the arrows are the
# one inner step θ'ᵢ = θ − α∇Lᵢ(θ) from where it ends. For comparison, the
# "pretrained" θ minimises the tasks' average loss.

# %%
def bowl_loss(theta, task):
    """L(θ) = ½ (θ − c)ᵀ A (θ − c) for task = (A, c): a quadratic bowl around c."""
    curvature, centre = task
    return 0.5 * (theta - centre) @ curvature @ (theta - centre)

bowls = (jnp.array([[[4.0, 0.0], [0.0, 0.3]], [[0.3, 0.0], [0.0, 4.0]], [[1.5, 1.2], [1.2, 1.5]]]),
         jnp.array([[-2.0, 1.0], [2.0, 1.5], [0.5, -2.0]]))            # (A_i), (θ*_i)
bowl_lr = 0.2                                                          # α of this picture

meta_grad = jax.jit(jax.grad(lambda t: maml.maml_objective(t, bowl_loss, bowls, bowls, bowl_lr)))
theta, path = jnp.array([-3.0, -3.0]), []
for _ in range(300):                       # plain gradient descent on the MAML objective
    path.append(theta)
    theta = theta - 0.3 * meta_grad(theta)
path = np.array(path)
pretrained_theta = jnp.linalg.solve(bowls[0].sum(0), jnp.einsum("tij,tj->i", bowls[0], bowls[1]))

def one_step_losses(theta, tasks, inner_lr):
    """Each task's loss after one inner step from θ."""
    return jax.vmap(lambda task: bowl_loss(maml.inner_loop(theta, bowl_loss, task, inner_lr, 1), task))(tasks)

fig, ax = plt.subplots(figsize=(6.5, 5))
ax.plot(*path.T, color="k", lw=3, label="θ during meta-training")
for start, color, label in ((path[-1], "C0", "MAML θ"), (pretrained_theta, "C7", "pretrained θ")):
    ax.plot(*start, "o", color=color, ms=9, label=label)
    for i in range(3):
        task = jax.tree.map(lambda a: a[i], bowls)
        stepped = maml.inner_loop(start, bowl_loss, task, bowl_lr, 1)
        ax.annotate("", xy=tuple(stepped), xytext=tuple(start),
                    arrowprops={"arrowstyle": "->", "color": color, "lw": 1.5, "ls": "--"})
for i, centre in enumerate(bowls[1]):
    ax.plot(*centre, "*", ms=14, color=f"C{i + 1}")
    ax.annotate(f"θ*{i + 1}", tuple(centre), textcoords="offset points", xytext=(6, 6))
ax.set(xlabel="θ₁", ylabel="θ₂", title=f"one inner step (α = {bowl_lr}) from MAML's θ and the pretrained θ",
       aspect="equal")
ax.legend(fontsize=8, loc="lower right")
plt.show()
bowl_result = {name: {"at θ": float(jax.vmap(bowl_loss, in_axes=(None, 0))(t, bowls).mean()),
                      "after one step": float(one_step_losses(t, bowls, bowl_lr).mean())}
               for name, t in (("MAML θ", jnp.asarray(path[-1])), ("pretrained θ", pretrained_theta))}
display(Markdown("Mean loss over the three tasks: " + "; ".join(
    f"{name}: {v['at θ']:.3f} at θ, {v['after one step']:.3f} after one step" for name, v in bowl_result.items())))

# %% [markdown]
# The pretrained θ has the lower loss where it stands; MAML's θ has the lower loss
# *after one step* — the quantity it was trained for (the numbers above). The line and
# the arrows play the parts of the bold path and the ∇Lᵢ arrows of the paper's Fig. 1.
# Each arrow is a gradient step, so it points downhill in its bowl, which is not
# straight at θ\*ᵢ where the bowl is elongated.
#
# The paper's Algorithm 2 (MAML for few-shot supervised learning), line by line,
# beside the library line that does each step — read from the installed source, with
# file and line number, so that the table stays true when the code changes:

# %%
import inspect

import minimaml.nets
import minimaml.sinusoid.tasks
import minimaml.train

ALGORITHM_2 = [
    ("Require: p(T), α, β", minimaml.train, "def meta_train("),
    ("1: randomly initialize θ", minimaml.nets, "def mlp_init("),
    ("2: while not done do", minimaml.train, "jax.lax.scan(one_step"),
    ("3: Sample batch of tasks Tᵢ ∼ p(T)", minimaml.train, "support, query = sample_tasks("),
    ("4: for all Tᵢ do", minimaml.maml, "per_task = jax.vmap("),
    ("5: Sample K datapoints D = {x⁽ʲ⁾, y⁽ʲ⁾} from Tᵢ", minimaml.sinusoid.tasks, "x[:, :support_size]"),
    ("6: Evaluate ∇θ L_Tᵢ(f_θ) using D and L_Tᵢ (Eq. 2 or 3)", minimaml.maml, "jax.value_and_grad(loss_fn)(params, support)"),
    ("7: Compute adapted parameters θ′ᵢ = θ − α∇θ L_Tᵢ(f_θ)", minimaml.maml, "p - inner_lr * g"),
    ("8: Sample datapoints D′ᵢ from Tᵢ for the meta-update", minimaml.sinusoid.tasks, "x[:, support_size:]"),
    ("10: θ ← θ − β∇θ Σ L_Tᵢ(f_θ′ᵢ) using each D′ᵢ", minimaml.maml, "return loss_fn(adapted, query)"),
    ("", minimaml.train, "jax.value_and_grad(objective)(params, support, query)"),
    ("", minimaml.train, "updates, opt_state = update(grads, opt_state, params)"),
]

def find_line(module, snippet):
    """(path relative to the package's parent, line number, line) of the first line holding snippet."""
    lines, first = inspect.getsourcelines(module)
    for number, line in enumerate(lines, start=first or 1):
        if snippet in line:
            path = pathlib.Path(inspect.getsourcefile(module)).relative_to(pathlib.Path(minimaml.__file__).parents[1])
            return path, number, line.strip()
    raise LookupError(f"{snippet!r} is no longer in {module.__name__}: update this table")

rows = ["| Algorithm 2 | minimaml | the line |", "|---|---|---|"]
for step, module, snippet in ALGORITHM_2:
    path, number, line = find_line(module, snippet)
    rows.append(f"| {step} | `{path}:{number}` | `{line.replace('|', '¦')}` |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# A few words on the mapping. Line 2's loop is a `lax.scan` over meta-steps inside
# `train.optimize`, `steps_per_call` steps per compiled call (1,000 by default: the
# signature of `optimize` in `minimaml/train.py`; chapter 4). Line 4's loop is a
# `jax.vmap` over the tasks of a meta-batch, not a Python loop. Lines 5 and 8 are one
# draw: the sampler draws K + Q points per task and splits them into the support set D
# and the query set D′. Line 10 is `jax.value_and_grad` of the mean over tasks (the
# paper writes a sum) of each task's query loss at its adapted θ′ᵢ, then an Adam update
# with β (the paper uses Adam for the sinusoids, Section 5.1); the gradient goes
# through line 7, which is the "gradient of a gradient" (chapter 2).
#
# ## The chapters
#
# Read them in order; chapters 1–8 each have exercises that check themselves.
#
# | chapter | what you learn |
# |---|---|
# | [01 One task](01_one_task.ipynb) | tasks, K shots, support and query sets; why gradient descent on 5 points fails |
# | [02 A gradient of a gradient](02_grad_of_grad.ipynb) | the meta-gradient by hand with a Hessian-vector product, checked against `jax.grad` and finite differences; what first-order MAML drops, and why it has the size it has |
# | [03 MAML on sinusoids](03_maml_sinusoid.ipynb) | the paper's sinusoid experiment (70,000 meta-steps, the official code's setting), the meta-test protocol, Fig. 2, Fig. 3 and the K = 5 numbers beside the paper's Table 2, across seeds; what the pretrained baseline learns |
# | [04 Batching and speed](04_batching_and_speed.ipynb) | Python loop → `vmap` → `jit` → `lax.scan`, timed on your machine; when JAX compiles again |
# | [05 First or second order?](05_first_vs_second_order.ipynb) | MAML vs first-order MAML vs Reptile: error, speed, gradient angle; memory of many inner steps and `jax.checkpoint` |
# | [06 Omniglot](06_omniglot.ipynb) | few-shot image classification, the paper's Omniglot experiment: the loop in cells, a shipped 5-way 1-shot θ at the paper's accuracy for that setting (99.04 ± 0.18 % in `minimaml/data/README.md` against its Table 1's 98.7 ± 0.4 %), baselines, the paper's four settings |
# | [07 Playground](07_playground.ipynb) | a live widget: pick K, α and the number of steps and watch MAML, pretrained and fresh networks adapt |
# | [08 Beyond MAML](08_beyond_maml.ipynb) | MAML's relatives (first-order MAML, Meta-SGD, ANIL, MAML++, Reptile, iMAML) as settings of one inner loop, compared on the sinusoid and Omniglot; your own Flax or Equinox model |
#
# How long each takes at full size on a CPU: the committed notebooks were run with
# `scripts/build_notebooks.py NN --execute`, which records each run's wall time, machine
# and load average in `notebooks/run_times.json`. The table is that file as it stood
# when this chapter ran, so a chapter re-run afterwards (this one included) may have a
# newer entry in the file. The times are from a shared machine at the load shown, not
# speed measurements (those are in BENCHMARKS.md):

# %%
times_path = pathlib.Path("run_times.json")          # beside the notebooks
run_times = json.loads(times_path.read_text()) if times_path.exists() else {}
if run_times:
    rows = ["| chapter | full-size run | machine | date |", "|---|---|---|---|"]
    rows += [f"| {name} | {entry['seconds'] / 60:.1f} min | {entry['machine']} (load after: {entry['load_after']}) "
             f"| {entry['date']} |" for name, entry in run_times.items()]
    display(Markdown("\n".join(rows)))
else:
    print("no run_times.json here: it is written when the chapters are run at full size")

# %% [markdown]
# ## How to run
#
# From the repository root:
#
# ```
# make lab
# ```
#
# creates the virtual environment `.venv` the first time, installs `minimaml` into it
# with its `dev` extra (the notebooks' dependencies included; again whenever
# `pyproject.toml` changes), and starts JupyterLab in `notebooks/`. Open a chapter and choose
# *Run → Run All Cells*. Each notebook takes its size from the cell tagged
# `parameters` near its top; make the numbers there smaller for a quick pass, or run
# one from the command line with papermill, in `notebooks/`, e.g.
# `papermill 03_maml_sinusoid.ipynb out.ipynb -p meta_steps 5000`. On Colab, the first
# cell of each chapter installs minimaml; elsewhere it does nothing (unless the
# `MINIMAML_INSTALL_FROM` environment variable names a source to install from).
#
# The exercises' solutions are in `notebooks/solutions/`, one notebook per chapter (1–8).

# %%
from minimaml.runs import write_results
write_results(results_path, minimaml_file=minimaml.__file__, jax=jax.__version__, backend=jax.default_backend(), one_step=one_step, bowl_one_step_loss=bowl_result, algorithm_rows=len(ALGORITHM_2))
