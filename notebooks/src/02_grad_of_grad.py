# %% tags=["remove-cell"]
# Colab only: install minimaml and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+https://github.com/minimaml/minimaml")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[notebooks] @ {source}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()

# %% [markdown]
# # Chapter 2 — A gradient of a gradient
#
# **What you will learn.** The MAML meta-gradient written out by hand for one inner
# step, computed with a Hessian-vector product (`jax.jvp` of `jax.grad`), and checked
# against `jax.grad` of the library's `maml_objective` and against finite differences.
# Then what *first-order* MAML drops, how big that dropped term is, and *why* it has
# the size it has.
#
# The checks run in float64 so that they can be tight. Only the cells that need it
# switch to float64, each inside `with jax.enable_x64(True):` — the rest of your
# session stays in JAX's default float32.

# %% tags=["parameters"]
seed = 0
inner_lr = 0.01        # α
support_size = 10      # K
query_size = 10
meta_batch = 25        # tasks in one meta-batch
num_directions = 8     # random directions for the finite-difference check
fd_eps = 1e-6          # finite-difference step
histogram_tasks = 500  # tasks for the "how big is the dropped term" histogram
results_path = None

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
from jax.flatten_util import ravel_pytree

from minimaml import maml, sinusoid
from minimaml.nets import mlp_apply
from minimaml.widgets import load_shipped_params

plt.rcParams.update({"figure.dpi": 75, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## 1. The MAML objective for one task
#
# Chapter 1 fitted one task with gradient steps from a fixed start. MAML instead
# *learns the start* θ. For a task T with a support set and a query set, one inner
# step gives the adapted parameters
#
# $$\theta' = \theta - \alpha \nabla_\theta \mathcal{L}_{\text{support}}(\theta),$$
#
# and MAML scores θ by how well θ' does on the query set, $\mathcal{L}_{\text{query}}(\theta')$.
# Over a batch of tasks it minimises the sum of that score (the meta-objective of the
# paper's Section 2.2; its Eq. 1 is the gradient step on that sum,
# θ ← θ − β∇_θ Σ_T L_T(f_θ'). Our code takes the mean, which only rescales the
# gradient). In code:
#
# | paper | code |
# |---|---|
# | α (inner step size) | `inner_lr` |
# | θ' = θ − α∇L(θ) (adapted parameters) | `maml.inner_loop(params, loss_fn, support, inner_lr, 1)` |
# | L_T(f_θ') for one task | `maml.task_loss(params, loss_fn, support, query, inner_lr)` |
# | Σ_T L_T(f_θ') over a batch of tasks (mean, in our code) | `maml.maml_objective(params, loss_fn, support, query, inner_lr)` |
#
# Here is one task's objective written out inline — this is all of MAML's forward pass:

# %%
def one_task_objective(theta, loss_fn, support, query, inner_lr):
    """L_query(θ − α ∇L_support(θ)) for one task; support, query: ((K, 1), (K, 1))."""
    grads = jax.grad(loss_fn)(theta, support)
    adapted = jax.tree.map(lambda p, g: p - inner_lr * g, theta, grads)
    return loss_fn(adapted, query)

loss_fn = sinusoid.sine_loss
init_key, task_key, dir_key, hist_key = jax.random.split(jax.random.key(seed), 4)
with jax.enable_x64(True):
    theta = sinusoid.init_params(init_key)                    # float64 inside this block
    tasks = sinusoid.sample_tasks(task_key, meta_batch, support_size, query_size)
    support, query = jax.tree.map(lambda a: a[0], (tasks.support, tasks.query))  # task 0
    ours = float(one_task_objective(theta, loss_fn, support, query, inner_lr))
    library = float(maml.task_loss(theta, loss_fn, support, query, inner_lr, 1))
    dtype = str(ravel_pytree(theta)[0].dtype)
print(f"dtype {dtype}; inline: {ours:.12f}   library task_loss: {library:.12f}")
assert abs(ours - library) < 1e-12

# %% [markdown]
# ## 2. Its gradient, by hand
#
# `jax.grad(one_task_objective)` would give the meta-gradient at once: JAX happily
# differentiates a function that itself calls `jax.grad`. But let us see what it
# computes. By the chain rule, with $g' = \nabla \mathcal{L}_{\text{query}}(\theta')$,
#
# $$\nabla_\theta\, \mathcal{L}_{\text{query}}(\theta') = \Big(\frac{\partial\theta'}{\partial\theta}\Big)^{\!\top} g'
#   = \big(I - \alpha \nabla^2 \mathcal{L}_{\text{support}}(\theta)\big)\, g'
#   = g' - \alpha\, H g' ,$$
#
# because $\partial\theta'/\partial\theta = I - \alpha H$ with $H = \nabla^2\mathcal{L}_{\text{support}}(\theta)$,
# which is symmetric. The second derivative enters — that is the "gradient through a
# gradient" of the paper (Section 2.2), which it computes with Hessian-vector products.
#
# H is a square matrix with one row per weight — its size is printed below — but we
# never need it: we need only the product $Hv$. A **Hessian-vector product** is the
# directional derivative of the gradient,
# $Hv = \frac{d}{d\epsilon}\nabla\mathcal{L}(\theta + \epsilon v)\big|_{\epsilon=0}$,
# which is exactly what `jax.jvp` of `jax.grad` computes (forward-over-reverse). Its
# cost is a small multiple of one gradient's: XLA's own count of the floating-point
# operations is printed below.

# %%
def support_hvp(theta, loss_fn, support, v):
    """H v with H = ∇²L_support(θ): jax.jvp of jax.grad, H never formed."""
    return jax.jvp(jax.grad(lambda t: loss_fn(t, support)), (theta,), (v,))[1]

def hand_meta_gradient(theta, loss_fn, support, query, inner_lr):
    """(I − α ∇²L_support(θ)) ∇L_query(θ'), for one task, written out."""
    adapted = maml.inner_loop(theta, loss_fn, support, inner_lr, 1)          # θ'
    g_query = jax.grad(loss_fn)(adapted, query)                              # g' = ∇L_query(θ')
    h_g = support_hvp(theta, loss_fn, support, g_query)                      # H g'
    return jax.tree.map(lambda g, hg: g - inner_lr * hg, g_query, h_g)

def xla_flops(fn, *args):
    """Floating-point operations XLA counts in fn(*args), compiled."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    return float((analysis[0] if isinstance(analysis, list) else analysis)["flops"])

with jax.enable_x64(True):
    n_weights = ravel_pytree(theta)[0].size
    flops_grad = xla_flops(lambda t: jax.grad(loss_fn)(t, support), theta)
    flops_hvp = xla_flops(lambda t, v: support_hvp(t, loss_fn, support, v), theta, theta)
print(f"H would be {n_weights} × {n_weights} = {n_weights ** 2:,} numbers")
print(f"XLA flops: gradient {flops_grad:,.0f}, Hessian-vector product {flops_hvp:,.0f} "
      f"({flops_hvp / flops_grad:.1f}× a gradient)")

# %% [markdown]
# ## 3. Check it against `jax.grad`
#
# First one task, against `jax.grad` of the library's `task_loss`; then a whole
# meta-batch, where the meta-gradient is the mean of the per-task ones, against
# `jax.grad(maml.maml_objective)` — the exact call that `minimaml.train.meta_train`
# differentiates.

# %%
def max_abs_diff(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

def norm(tree):
    return float(jnp.linalg.norm(ravel_pytree(tree)[0]))

with jax.enable_x64(True):
    mine = hand_meta_gradient(theta, loss_fn, support, query, inner_lr)
    autodiff = jax.grad(maml.task_loss)(theta, loss_fn, support, query, inner_lr, 1)
    batch_mine = jax.tree.map(lambda g: jnp.mean(g, axis=0), jax.vmap(
        hand_meta_gradient, in_axes=(None, None, 0, 0, None))(theta, loss_fn, tasks.support, tasks.query, inner_lr))
    batch_autodiff = jax.grad(maml.maml_objective)(theta, loss_fn, tasks.support, tasks.query, inner_lr, 1)
    one_task_diff, batch_diff = max_abs_diff(mine, autodiff), max_abs_diff(batch_mine, batch_autodiff)
    one_task_norm, meta_gradient_norm = norm(autodiff), norm(batch_autodiff)
print(f"one task:   |hand − jax.grad|_max = {one_task_diff:.2e}   (|grad| = {one_task_norm:.3e})")
print(f"{meta_batch} tasks:   |hand − jax.grad(maml_objective)|_max = {batch_diff:.2e}")
assert one_task_diff < 1e-12 * max(1.0, one_task_norm) and batch_diff < 1e-12

# %% [markdown]
# ## 4. Check both against finite differences
#
# Autodiff could in principle agree with a hand derivation that shares its mistake.
# Finite differences know nothing of either: for random unit directions v, the
# central difference $\big(F(\theta + \epsilon v) - F(\theta - \epsilon v)\big)/2\epsilon$
# must match the directional derivative $\langle \nabla F(\theta), v\rangle$ up to
# $O(\epsilon^2)$. Here F is the whole meta-batch objective.

# %%
def central_difference(objective, flat, v, eps):
    return (objective(flat + eps * v) - objective(flat - eps * v)) / (2 * eps)

def flat_objective(unravel, loss_fn, support, query, inner_lr, dtype):
    """The meta-batch objective of one flat parameter vector, computed in `dtype`, jitted."""
    cast = lambda tree: jax.tree.map(lambda a: a.astype(dtype), tree)
    return jax.jit(lambda flat: maml.maml_objective(cast(unravel(flat)), loss_fn, cast(support),
                                                    cast(query), dtype(inner_lr), 1))

with jax.enable_x64(True):
    flat_theta, unravel = ravel_pytree(theta)
    flat_grad = ravel_pytree(batch_mine)[0]
    objective64 = flat_objective(unravel, loss_fn, tasks.support, tasks.query, inner_lr, jnp.float64)
    directions = jax.random.normal(dir_key, (num_directions, flat_theta.size))
    directions = directions / jnp.linalg.norm(directions, axis=1, keepdims=True)
    fd_rows = np.array([(float(central_difference(objective64, flat_theta, v, fd_eps)), float(flat_grad @ v))
                        for v in directions])
fd_rel_err = float(np.max(np.abs(fd_rows[:, 0] - fd_rows[:, 1]) / np.abs(fd_rows[:, 1]).clip(1e-12)))
print(" finite difference | hand meta-gradient · v")
for fd, analytic in fd_rows:
    print(f" {fd:+.10e} | {analytic:+.10e}")
print(f"largest relative error at ε = {fd_eps:g}: {fd_rel_err:.1e}")
assert fd_rel_err < 1e-5

# %% [markdown]
# Why ε = 1e-6? A larger ε pays the $O(\epsilon^2)$ error of the difference quotient,
# and more once the step crosses ReLU kinks, where the loss is not smooth; a smaller
# one drowns the difference in rounding error, which grows like (machine precision)/ε. Here is the relative
# error along the first direction for a sweep of ε, in float64 and in float32:

# %%
eps_grid = np.logspace(-10, -1, 19)
sweep = {}
with jax.enable_x64(True):
    v, exact = directions[0], float(flat_grad @ directions[0])
    for precision in (jnp.float64, jnp.float32):
        objective = flat_objective(unravel, loss_fn, tasks.support, tasks.query, inner_lr, precision)
        flat, direction = flat_theta.astype(precision), v.astype(precision)
        sweep[precision.__name__] = np.array([
            abs(float(central_difference(objective, flat, direction, precision(eps))) - exact) / abs(exact)
            for eps in eps_grid])
best = {name: (float(errs.min()), float(eps_grid[errs.argmin()])) for name, errs in sweep.items()}

fig, ax = plt.subplots(figsize=(6.5, 3.2))
for name, color in (("float64", "C0"), ("float32", "C3")):
    ax.loglog(eps_grid, sweep[name], "o-", color=color, ms=3, label=name)
ax.axvline(fd_eps, color="k", ls=":", lw=1, label=f"fd_eps = {fd_eps:g}")
ax.set(xlabel="ε", ylabel="relative error of the central difference", title="Finite differences: the ε trade-off")
ax.legend(fontsize=8)
plt.show()
for name, (err, eps) in best.items():
    print(f"{name}: best relative error {err:.1e} at ε = {eps:.0e}")

# %%
display(Markdown(
    f"In float64 the smallest error, {best['float64'][0]:.0e}, comes at ε ≈ {best['float64'][1]:.0e}. "
    f"In float32 the best any ε manages is {best['float32'][0]:.0e}, "
    f"about {best['float32'][0] / best['float64'][0]:.0e} times larger: a float32 check could confirm "
    f"the meta-gradient to about {-np.log10(best['float32'][0]):.0f} digits, float64 to about "
    f"{-np.log10(best['float64'][0]):.0f}. That is why this chapter checks in float64."))

# %% [markdown]
# ## 5. What first-order MAML drops
#
# First-order MAML (FOMAML; the paper's "first-order approximation", Section 5.2, which
# omits the second derivatives) treats the inner gradient as a constant, i.e. pretends
# $\partial\theta'/\partial\theta = I$. Its meta-gradient is just $g'$: the gradient of
# the query loss *at the adapted parameters*, applied to θ. It drops exactly the
# term $\alpha H g'$. In the library, `first_order=True` puts a `stop_gradient` on the
# inner gradient; we check that this is the same thing.

# %%
with jax.enable_x64(True):
    fo_library = jax.grad(maml.task_loss)(theta, loss_fn, support, query, inner_lr, 1,
                                          first_order=True)
    g_prime = jax.grad(loss_fn)(maml.inner_loop(theta, loss_fn, support, inner_lr, 1), query)
    fo_diff = max_abs_diff(fo_library, g_prime)
print(f"|first_order=True − g'|_max = {fo_diff:.1e}")
assert fo_diff < 1e-12

# %% [markdown]
# How large is the dropped term $\alpha H g'$ next to the full meta-gradient? We look
# at `histogram_tasks` fresh tasks, at two places in parameter space: the random
# initialisation, and the MAML initialisation trained with the paper's config (shipped
# with the library in `minimaml/data/`, made by chapter 3's recipe). For each task we
# also keep two things that will explain the answer: how the squared length of g' is
# split over the network's six parameter arrays, and how much of H g′ the
# **Gauss–Newton** part of the Hessian gives (below).

# %%
def dropped_term_stats(theta, loss_fn, support, query, inner_lr):
    """One task: |αHg'|/|full|, cos(full, first-order), g''s squared-length share per
    parameter array, and |Hg' − Gg'|/|Hg'| with G the Gauss-Newton matrix."""
    g = jax.grad(loss_fn)(maml.inner_loop(theta, loss_fn, support, inner_lr, 1), query)
    h_g = support_hvp(theta, loss_fn, support, g)
    outputs, j_g = jax.jvp(lambda p: mlp_apply(p, support[0]), (theta,), (g,))     # J g'
    _, pullback = jax.vjp(lambda p: mlp_apply(p, support[0]), theta)
    gn_g = pullback(2.0 / outputs.size * j_g)[0]                                  # G g' = (2/K) Jᵀ J g'
    full = ravel_pytree(jax.tree.map(lambda a, b: a - inner_lr * b, g, h_g))[0]
    first, h_g, gn_g = ravel_pytree(g)[0], ravel_pytree(h_g)[0], ravel_pytree(gn_g)[0]
    share = jnp.stack([jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(g)]) / jnp.sum(first ** 2)
    return {"ratio": inner_lr * jnp.linalg.norm(h_g) / jnp.linalg.norm(full),
            "cosine": full @ first / (jnp.linalg.norm(full) * jnp.linalg.norm(first)),
            "share": share,
            "gn_miss": jnp.linalg.norm(h_g - gn_g) / jnp.linalg.norm(h_g)}

batched_stats = jax.jit(jax.vmap(dropped_term_stats, in_axes=(None, None, 0, 0, None)), static_argnums=1)
maml_theta, _ = load_shipped_params()
leaf_names = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(theta)[0]]
stats = {}
with jax.enable_x64(True):
    many = sinusoid.sample_tasks(hist_key, histogram_tasks, support_size, query_size)
    points = {"random init": theta, "MAML-trained θ": jax.tree.map(lambda a: a.astype(jnp.float64), maml_theta)}
    for name, point in points.items():
        stats[name] = jax.tree.map(np.asarray, batched_stats(point, loss_fn, many.support, many.query, inner_lr))
    # The random init at a larger α too: the prediction below says how the ratio moves.
    ratio_at_01 = float(np.median(batched_stats(theta, loss_fn, many.support, many.query, 0.1)["ratio"]))
    # How far from 0 the random network's output strays over all the support inputs.
    init_output = float(jnp.max(jnp.abs(mlp_apply(theta, many.support[0].reshape(-1, 1)))))

for name, s in stats.items():
    print(f"{name:>15}: |αHg'|/|full| median {np.median(s['ratio']):.4f} (90th pct {np.percentile(s['ratio'], 90):.3f}); "
          f"angle(full, first-order) median {np.degrees(np.arccos(min(1.0, np.median(s['cosine'])))):.2f}°")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), constrained_layout=True)
angle_bins = np.linspace(0, 180, 61)
bins = np.logspace(np.log10(min(s["ratio"].min() for s in stats.values())),
                   np.log10(max(s["ratio"].max() for s in stats.values())), 40)
for (name, s), color in zip(stats.items(), ("C7", "C0")):
    axes[0].hist(s["ratio"], bins=bins, color=color, alpha=0.7, label=name)
    axes[1].hist(np.degrees(np.arccos(np.clip(s["cosine"], -1, 1))), bins=angle_bins, color=color, alpha=0.7, label=name)
axes[0].set(xscale="log", xlabel="|α H g'| / |full meta-gradient|", ylabel="tasks",
            title="size of the term first-order MAML drops")
axes[1].set(xlabel="angle between full and first-order meta-gradient (degrees)", ylabel="tasks",
            title=f"one task at a time, α = {inner_lr}")
for ax in axes:
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 6. Why the dropped term has that size
#
# The answer depends on *where* we look. The per-array split of $g'$ shows what the
# gradient is made of at each place:

# %%
rows = ["| parameter array | " + " | ".join(f"share of ‖g'‖², {name} (median)" for name in stats) + " |",
        "|---|" + "---|" * len(stats)]
for i, leaf in enumerate(leaf_names):
    rows.append(f"| `params{leaf}` | " + " | ".join(f"{np.median(s['share'][:, i]):.4f}" for s in stats.values()) + " |")
display(Markdown("\n".join(rows)))

# %%
rand, trained = stats["random init"], stats["MAML-trained θ"]
bias = leaf_names.index("[2]['b']")
trained_shares = np.median(trained["share"], axis=0)
largest = int(np.argmax(trained_shares))
predicted = 2 * inner_lr / (1 - 2 * inner_lr)
display(Markdown(
    f"**At the random initialisation** the weights are tiny, so the network's output is "
    f"≈ 0 whatever its input (at most {init_output:.1e} in absolute value over these tasks' "
    f"support inputs) and almost all of g′ sits in the output bias: a median "
    f"{100 * np.median(rand['share'][:, bias]):.2f}% of its squared length. The MSE's "
    f"second derivative in the output bias is exactly 2 (the bias enters every prediction "
    f"with slope 1), so H g′ ≈ 2 g′, the full meta-gradient is ≈ (1 − 2α) g′, and "
    f"the ratio is ≈ 2α/(1 − 2α) = {predicted:.4f} at α = {inner_lr}. Measured: median "
    f"{np.median(rand['ratio']):.4f}. At α = 0.1 the same argument predicts "
    f"{0.2 / 0.8:.3f}; measured: {ratio_at_01:.3f}. The term is small here because α is "
    f"small and this one curvature is 2 — not because the Hessian is small.\n\n"
    f"**At the MAML-trained θ** the gradient is spread over the arrays (the table; the "
    f"largest median share, {trained_shares[largest]:.0%}, in `params{leaf_names[largest]}`; "
    f"the output bias's is {trained_shares[bias]:.1%}), "
    f"the dropped term has a median size of {np.median(trained['ratio']):.2f} times the "
    f"full meta-gradient, and the median angle between the full and the first-order "
    f"meta-gradient is {np.degrees(np.arccos(np.median(trained['cosine']))):.0f}°."))

# %% [markdown]
# The paper found first-order MAML almost as good as full MAML on MiniImagenet (its
# Table 1, bottom half, 5-way accuracy, first order against full: 48.07 % and 48.70 %
# at 1 shot, 63.15 % and 63.11 % at 5 shots) and offered a partial reason (Section 5.2,
# citing Goodfellow et al., 2015): ReLU networks are *locally almost linear*, "which
# suggests that second derivatives may be close to zero in most cases". Under a
# squared-error loss that argument does not carry over. Split the Hessian of the MSE
# of a network f over K points:
#
# $$\nabla^2 \mathcal{L} = \underbrace{\tfrac{2}{K} J^\top J}_{\text{Gauss–Newton } G}
#   + \tfrac{2}{K}\sum_{i} \big(f(x_i) - y_i\big)\, \nabla^2_\theta f(x_i),$$
#
# with J the Jacobian of the K outputs with respect to θ. A network that is exactly
# linear in its parameters has $\nabla^2_\theta f = 0$ — yet its loss still has the
# Hessian $G = \tfrac{2}{K}J^\top J$, which is not zero. Measured on the same tasks:

# %%
display(Markdown(
    f"The Gauss–Newton part alone is within {100 * np.median(rand['gn_miss']):.1f}% of H g′ "
    f"(median over tasks) at the random initialisation and within "
    f"{100 * np.median(trained['gn_miss']):.0f}% at the MAML-trained θ: most of the "
    f"curvature that first-order MAML drops is the part that any model, linear or not, "
    f"has under the squared error.\n\n"
    f"Whether the dropped term matters for the *result* is another question: the "
    f"gradients of {meta_batch} tasks are averaged and Adam rescales its steps. Chapter 5 "
    f"trains both and measures the final error and the angle between the two meta-batch "
    f"gradients along the way."))

# %% [markdown]
# The hand derivation also shows the cost: the full meta-gradient needs one more
# Hessian-vector product per inner step (a few gradients' worth of arithmetic, counted
# in section 2) and — through the chain of Jacobians $\prod_j (I - \alpha H_j)$ — memory
# for every inner step. Chapter 5 measures that memory.
#
# ## Try it live
#
# Set `inner_lr` in the parameters cell to 0.1 and run the chapter again: section 6
# predicts the random-initialisation ratio from α alone; watch how both histograms of
# section 5 move.
#
# Or move α without re-running anything: the explorer below computes, for one batch of
# tasks at a time, the second-order meta-gradient, the first-order one and the term
# first order drops, layer by layer (sizes and angles), at the shipped MAML θ or at a
# random θ. The cell runs on its
# own after a kernel restart; it needs a live kernel (a saved copy shows a still picture).

# %% tags=["widget"]
from minimaml.widgets import second_order_explorer

second_order_explorer()

# %% [markdown]
# ## Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell: the
# `check_…` call runs your function on fresh inputs against a reference and says
# `correct`, or what differs. Solutions: `notebooks/solutions/02_grad_of_grad.ipynb`.
# (The checks run in float32, so do not switch on float64 for them.)
#
# **1. A Hessian-vector product as `jvp` of `grad`**, for any scalar function `f` of a
# pytree θ (section 2 wrote it for the support loss only).

# %% tags=["exercise"]
import jax

from minimaml.exercises.grad_of_grad import check_hvp

def hvp(f, theta, v):
    """H v with H = ∇²f(θ), for pytrees θ and v of the same structure, without forming H."""
    raise NotImplementedError  # your code here

check_hvp(hvp)

# %% [markdown]
# **2. The Gauss–Newton product** (2/K)·Jᵀ(J v) for a network `apply_fn(params, x)`
# with K outputs, from `jax.jvp` (J v) and `jax.vjp` (Jᵀ u) — no Jacobian formed.

# %% tags=["exercise"]
import jax

from minimaml.exercises.grad_of_grad import check_gauss_newton_product

def gauss_newton_product(params, apply_fn, x, v):
    """(2/K)·Jᵀ(J v), J the Jacobian of apply_fn(params, x) (K outputs) with respect to params."""
    raise NotImplementedError  # your code here

check_gauss_newton_product(gauss_newton_product)

# %% [markdown]
# **3. The meta-gradient through two inner steps.** With θ' = θ − α∇L(θ) and
# θ'' = θ' − α∇L(θ'), the meta-gradient is (I − αH(θ))(I − αH(θ'))g'' with
# g'' = ∇L_query(θ''). Compute it with two Hessian-vector products — in the right
# order — and no `jax.grad` through the inner steps.

# %% tags=["exercise"]
import jax

from minimaml.exercises.grad_of_grad import check_two_step_meta_gradient

def two_step_meta_gradient(params, loss_fn, support, query, inner_lr):
    """∇_θ L_query(θ'') for θ' = θ − α∇L_support(θ), θ'' = θ' − α∇L_support(θ')."""
    raise NotImplementedError  # your code here

check_two_step_meta_gradient(two_step_meta_gradient)

# %% [markdown]
# **To explore** (no check): form H with `jax.hessian` on the flattened parameters and
# time it against your `hvp`.

# %%
from minimaml.runs import write_results
write_results(results_path, one_task_max_abs_diff=one_task_diff, batch_max_abs_diff=batch_diff, fd_max_rel_err=fd_rel_err, fd_best=best, first_order_vs_g_prime_max_abs_diff=fo_diff, dtype=dtype, meta_gradient_norm=meta_gradient_norm, flops_hvp_over_grad=flops_hvp / flops_grad, inner_lr=inner_lr, ratio_at_01=ratio_at_01, dropped_ratio_median={n: float(np.median(s["ratio"])) for n, s in stats.items()}, cosine_median={n: float(np.median(s["cosine"])) for n, s in stats.items()}, output_bias_share_median={n: float(np.median(s["share"][:, bias])) for n, s in stats.items()}, gauss_newton_miss_median={n: float(np.median(s["gn_miss"])) for n, s in stats.items()})
