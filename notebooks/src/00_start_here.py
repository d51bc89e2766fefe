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
# one sine wave to the paper's experiments, using the small `minimaml` library for
# the parts you have already seen written out.
#
# ## The chapters
#
# | chapter | what you learn |
# |---|---|
# | [01 One task](01_one_task.ipynb) | tasks, K shots, support and query sets; why gradient descent on 5 points fails |
# | [02 A gradient of a gradient](02_grad_of_grad.ipynb) | the meta-gradient by hand with a Hessian-vector product, checked against `jax.grad` and finite differences; what first-order MAML drops |
# | [03 MAML on sinusoids](03_maml_sinusoid.ipynb) | the paper's 70,000-step experiment on a CPU, the meta-test protocol, Fig. 2, Fig. 3 and the K = 5 table beside the paper's |
# | [04 Batching and speed](04_batching_and_speed.ipynb) | Python loop → `vmap` → `jit` → `lax.scan`, timed on your machine; when JAX recompiles |
# | [05 First or second order?](05_first_vs_second_order.ipynb) | MAML vs first-order MAML vs Reptile: error, speed, gradient angle; memory of many inner steps and `jax.checkpoint` |
# | [06 Omniglot](06_omniglot.ipynb) | few-shot image classification, the paper's Omniglot experiment |
# | [07 Playground](07_playground.ipynb) | a live widget: pick K, α and the number of steps and watch MAML and the baseline adapt |
#
# Chapters 1–5 run on a laptop CPU in minutes each; read them in order. Chapter 6
# wants a GPU for the full run; chapter 7 can be opened at any time.
#
# ## How to run
#
# From the repository root:
#
# ```
# make lab
# ```
#
# creates the virtual environment `.venv` (first time only), installs `minimaml` with
# its dependencies, and starts JupyterLab in `notebooks/`. Open a chapter and choose
# *Run → Run All Cells*. Each notebook takes its size from the cell tagged
# `parameters` near its top; make the numbers there smaller for a quick pass, or run
# one from the command line with papermill, e.g.
# `papermill 03_maml_sinusoid.ipynb out.ipynb -p meta_steps 5000`.
#
# The cell below checks your setup.

# %%
import jax

import minimaml

print(f"minimaml {minimaml.__version__} from {minimaml.__file__}")
print(f"jax {jax.__version__}, devices: {jax.devices()}")

# %% tags=["parameters"]
results_path = None

# %%
import json
import pathlib

if results_path:
    pathlib.Path(results_path).write_text(json.dumps(
        {"minimaml_file": minimaml.__file__, "jax": jax.__version__, "backend": jax.default_backend()}))
