"""Independent oracles: each test works out the right answer without the library's code —
by hand, in closed form, or with a small reference written here — and compares.

- MAML on a scalar linear model f(x) = w·x: w′, the objective and its derivative in
  closed form, for 0, 1, 2 and 7 inner steps, second and first order.
- The meta-gradient of small float64 MLPs against the explicit chain rule
  (I − αH_0)···(I − αH_{n−1}) ∇L_query(θ_n), Hessians of a loss written here.
- Training: one optax.sgd step and two Adam steps, by hand; pretraining long enough lands
  at the analytic optimum of the sinusoid family (MSE ≈ 3.0), which no model that does
  not adapt can beat, and MAML's post-adaptation loss falls below it.
- Omniglot: a tiny run whose meta-test is instrumented — every evaluated image from the
  test split, no character shared with training, exactly ``eval_inner_steps`` steps.
- The playground: the curve under each label is the one the θ read from the shipped file
  (not the widget's own dict) gives.
"""
import base64
import io
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from minimaml import maml
from minimaml.losses import cross_entropy_loss, mse_loss
from minimaml.train import meta_train, optimize, pretrain

REPO = pathlib.Path(__file__).resolve().parents[1]


# --- MAML on f(x) = w·x, in closed form ------------------------------------------------
#
# L(w; x, y) = mean((w·x − y)²) = a·w² − 2b·w + e with a = mean(x²), b = mean(x·y),
# e = mean(y²), so ∇L(w) = 2(a·w − b). One SGD step on the support set (a_s, b_s):
#     w′ = w − 2α(a_s·w − b_s) = c·w + d,   c = 1 − 2α·a_s,  d = 2α·b_s,
# and n steps: w_n = cⁿ·w + d·(1 + c + … + cⁿ⁻¹). The task's objective is L_q(w_n) with
# the query set's (a_q, b_q, e_q), its derivative dL_q(w_n)/dw = 2(a_q·w_n − b_q)·cⁿ;
# first-order MAML drops dw_n/dw = cⁿ. The meta-objective averages over tasks.

def hand_linear_loss(params, batch):
    x, y = batch
    return jnp.mean((params["w"] * x - y) ** 2)


def linear_apply(params, x):
    return params["w"] * x


LINEAR_LOSSES = {"hand-written": hand_linear_loss, "mse_loss": mse_loss(linear_apply)}


def linear_tasks(seed=0, tasks=3, support=4, query=5):
    """Tasks y = slope·x + noise with distinct support and query points (float64)."""
    rng = np.random.default_rng(seed)
    slope = rng.uniform(-2, 2, (tasks, 1, 1))

    def points(n):
        x = rng.normal(size=(tasks, n, 1))
        return x, slope * x + 0.3 * rng.normal(size=(tasks, n, 1))
    return points(support), points(query)


def moments(batch):
    x, y = (np.asarray(a)[..., 0] for a in batch)
    return (x * x).mean(-1), (x * y).mean(-1), (y * y).mean(-1)


def closed_form(w, support, query, inner_lr, steps):
    """Per task: (w_n, L_q(w_n), dL_q(w_n)/dw, first-order derivative)."""
    a_s, b_s, _ = moments(support)
    a_q, b_q, e_q = moments(query)
    c, d = 1 - 2 * inner_lr * a_s, 2 * inner_lr * b_s
    w_n = c ** steps * w + d * sum(c ** k for k in range(steps))
    loss = a_q * w_n ** 2 - 2 * b_q * w_n + e_q
    first_order = 2 * (a_q * w_n - b_q)
    return w_n, loss, first_order * c ** steps, first_order


@pytest.mark.parametrize("loss_name", LINEAR_LOSSES)
@pytest.mark.parametrize("steps, remat", [(0, False), (1, False), (2, False), (2, True),
                                          (7, True)])
def test_maml_objective_and_meta_gradient_on_a_linear_model_in_closed_form(loss_name, steps,
                                                                            remat):
    loss_fn = LINEAR_LOSSES[loss_name]
    w, inner_lr = 0.7, 0.15
    with jax.enable_x64(True):
        support, query = linear_tasks()
        _, loss, grad, grad_first_order = closed_form(w, support, query, inner_lr, steps)
        params = {"w": jnp.float64(w)}

        def objective(p, first_order=False):
            return maml.maml_objective(p, loss_fn, support, query, inner_lr, steps,
                                       first_order=first_order, remat=remat)

        assert float(objective(params)) == pytest.approx(loss.mean(), rel=1e-12)
        value, meta_grad = jax.value_and_grad(objective)(params)
        assert float(value) == pytest.approx(loss.mean(), rel=1e-12)
        assert float(meta_grad["w"]) == pytest.approx(grad.mean(), rel=1e-10)
        first = jax.grad(objective)(params, True)
        assert float(first["w"]) == pytest.approx(grad_first_order.mean(), rel=1e-10)
        if steps:   # the oracle tells the two apart: cⁿ is far from 1 here
            assert abs(grad.mean() - grad_first_order.mean()) > 0.05 * abs(grad.mean())
        # One task at a time: task_loss and its gradient.
        for t in range(3):
            one = lambda a: a[t]
            s, q = jax.tree.map(one, support), jax.tree.map(one, query)
            value, g = jax.value_and_grad(maml.task_loss)(params, loss_fn, s, q, inner_lr,
                                                           steps, remat=remat)
            assert float(value) == pytest.approx(loss[t], rel=1e-12)
            assert float(g["w"]) == pytest.approx(grad[t], rel=1e-10)


@pytest.mark.parametrize("loss_name", LINEAR_LOSSES)
def test_inner_loop_trajectory_on_a_linear_model_in_closed_form(loss_name):
    loss_fn = LINEAR_LOSSES[loss_name]
    with jax.enable_x64(True):
        support, _ = linear_tasks(seed=1)
        support = jax.tree.map(lambda a: a[0], support)
        a_s, b_s, e_s = moments(support)
        w, inner_lr, steps = -0.4, 0.2, 3
        adapted, trajectory = maml.inner_loop({"w": jnp.float64(w)}, loss_fn, support,
                                              inner_lr, steps, trajectory=True)
        as_batch = tuple(a[None] for a in support)          # a batch of this one task
        expected_w = [closed_form(w, as_batch, as_batch, inner_lr, n)[0][0]
                      for n in range(steps + 1)]
        np.testing.assert_allclose(trajectory.params["w"], expected_w, rtol=1e-12)
        np.testing.assert_allclose(trajectory.losses,
                                   [a_s * v ** 2 - 2 * b_s * v + e_s for v in expected_w],
                                   rtol=1e-12)
        assert float(adapted["w"]) == pytest.approx(expected_w[-1], rel=1e-12)
        new, loss_before = maml.sgd_step({"w": jnp.float64(w)}, loss_fn, support, inner_lr)
        assert float(new["w"]) == pytest.approx(expected_w[1], rel=1e-12)
        assert float(loss_before) == pytest.approx(a_s * w ** 2 - 2 * b_s * w + e_s, rel=1e-12)
        # differentiating through one step sees dw'/dw = c = 1 − 2α·a_s, unless first order
        second = lambda p: maml.sgd_step(p, loss_fn, support, inner_lr)[0]["w"]  # default
        first = lambda p: maml.sgd_step(p, loss_fn, support, inner_lr, True)[0]["w"]
        for step, slope in ((second, 1 - 2 * inner_lr * a_s), (first, 1.0)):
            assert float(jax.grad(step)({"w": jnp.float64(w)})["w"]) == pytest.approx(
                slope, rel=1e-12)


def test_losses_by_hand():
    """mse_loss (plain and weighted) and cross_entropy_loss against numpy."""
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        matrix = rng.normal(size=(3, 2))
        apply = lambda p, x: x @ p
        x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
        mse = mse_loss(apply)
        assert float(mse(matrix, (x, y))) == pytest.approx(np.mean((x @ matrix - y) ** 2),
                                                           rel=1e-12)
        per_example = np.mean((x @ matrix - y) ** 2, axis=1)
        for weights in ([1.0, 0.0, 2.0, 0.0, 1.0, 0.5], [0.25, 0.0, 0.0, 0.5, 0.0, 0.0]):
            weights = np.array(weights)         # (the second sums to less than one)
            assert float(mse(matrix, (x, y, weights))) == pytest.approx(
                np.sum(weights * per_example) / np.sum(weights), rel=1e-12)
        labels = np.array([0, 1, 1, 0, 1, 0])
        logits = x @ matrix
        log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        expected = -np.mean(log_softmax[np.arange(6), labels])
        assert float(cross_entropy_loss(apply)(matrix, (x, labels))) == pytest.approx(
            expected, rel=1e-12)
        for rows in (5, 7):     # one label per row of logits, more or fewer is refused
            with pytest.raises(ValueError, match="logits"):
                cross_entropy_loss(apply)(matrix, (rng.normal(size=(rows, 3)), labels))


# --- the meta-gradient of small MLPs: an explicit chain rule written here ----------------

def pack(params):
    return np.concatenate([np.concatenate([np.ravel(layer["w"]), np.ravel(layer["b"])])
                           for layer in params])


def reference_mlp(flat, x, sizes, activation):
    offset, h = 0, x
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = flat[offset:offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        h = h @ w + flat[offset:offset + n_out]
        offset += n_out
        if i < len(sizes) - 2:
            h = activation(h)
    return h


def reference_maml(flat, support, query, inner_lr, steps, sizes, activation):
    """(objective, meta-gradient) by the chain rule: θ_{k+1} = θ_k − α∇L_s(θ_k), so
    dθ_n/dθ = (I − αH_{n−1})···(I − αH_0), H_k the support loss's Hessian at θ_k."""
    def loss(theta, x, y):
        return jnp.mean((reference_mlp(theta, x, sizes, activation) - y) ** 2)

    hessian_of, grad_of = jax.jit(jax.hessian(loss)), jax.jit(jax.grad(loss))
    values, grads = [], []
    for (sx, sy), (qx, qy) in zip(zip(*support), zip(*query)):
        theta, jacobian_t = flat, np.eye(flat.size)    # (dθ_k/dθ)ᵀ
        for _ in range(steps):
            hessian = np.asarray(hessian_of(theta, sx, sy))
            jacobian_t = jacobian_t @ (np.eye(flat.size) - inner_lr * hessian)
            theta = theta - inner_lr * np.asarray(grad_of(theta, sx, sy))
        values.append(float(loss(theta, qx, qy)))
        grads.append(jacobian_t @ np.asarray(grad_of(theta, qx, qy)))
    return np.mean(values), np.mean(grads, axis=0)


def sine_tasks(seed, tasks=3, support=5, query=6):
    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(0.1, 5.0, (tasks, 1, 1))
    phase = rng.uniform(0, np.pi, (tasks, 1, 1))

    def points(n):
        x = rng.uniform(-5, 5, (tasks, n, 1))
        return x, amplitude * np.sin(x - phase)
    return points(support), points(query)


@pytest.mark.parametrize("activation, steps", [("relu", 2), ("tanh", 3)])
def test_meta_gradient_of_an_mlp_against_the_explicit_chain_rule(activation, steps):
    """The float64 cross-check that always runs (the PyTorch peers check the same in
    ``make bench``). The first-order gradient and the plain query gradient both miss
    the reference by orders of magnitude more than the tolerance: the check has teeth."""
    from minimaml.nets import mlp_init
    sizes, inner_lr = (1, 8, 8, 1), 0.05
    act = {"relu": jax.nn.relu, "tanh": jnp.tanh}[activation]

    def apply(params, x):
        *hidden, last = params
        for layer in hidden:
            x = act(x @ layer["w"] + layer["b"])
        return x @ last["w"] + last["b"]

    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64),
                              mlp_init(jax.random.key(steps), sizes, weight_std=0.5))
        support, query = sine_tasks(steps)
        loss_fn = mse_loss(apply)
        value, grad = jax.value_and_grad(maml.maml_objective)(params, loss_fn, support, query,
                                                              inner_lr, steps)
        ref_value, ref_grad = reference_maml(pack(params), support, query, inner_lr, steps,
                                             sizes, act)
        assert float(value) == pytest.approx(ref_value, rel=1e-12)
        scale = np.max(np.abs(ref_grad))
        tolerance = 1e-9                      # benchmarks/peer_comparison.py: GRAD_RTOL
        assert np.max(np.abs(pack(grad) - ref_grad)) <= tolerance * scale
        first = jax.grad(maml.maml_objective)(params, loss_fn, support, query, inner_lr, steps,
                                              first_order=True)
        plain = jax.grad(maml.query_loss)(params, loss_fn, support, query)
        for wrong in (first, plain):
            assert np.max(np.abs(pack(wrong) - ref_grad)) > 1e3 * tolerance * scale


# --- training: optimizer steps by hand, the analytic optimum of pretraining -------------

def fixed_sampler(batch):
    """A sampler that ignores its key: every step sees ``batch``."""
    return lambda key: batch


def plain_gradient(w, query):
    """d/dw of the plain query loss mean_t L_q(w) (no adaptation), by hand."""
    a_q, b_q, _ = moments(query)
    return np.mean(2 * (a_q * w - b_q))


def test_one_sgd_step_of_pretraining_by_hand():
    w, lr = 0.7, 0.05
    with jax.enable_x64(True):
        support, query = linear_tasks(seed=2)
        params, _, losses = pretrain({"w": jnp.float64(w)}, hand_linear_loss,
                                     fixed_sampler((support, query)), jax.random.key(0),
                                     steps=1, lr=None, optimizer=optax.sgd(lr))
        assert float(params["w"]) == pytest.approx(w - lr * plain_gradient(w, query),
                                                   rel=1e-12)
        np.testing.assert_allclose(losses, [closed_form(w, support, query, 0.1, 0)[1].mean()],
                                   rtol=1e-12)


@pytest.mark.parametrize("recipe", ["pretrain", "meta_train"])
def test_two_default_adam_steps_by_hand(recipe):
    """Both recipes use Adam(lr) with β1 = 0.9, β2 = 0.999, ε = 1e-8 (Kingma & Ba,
    Algorithm 1) on their own objective: pretraining the plain query loss, meta-training
    the MAML objective. The losses returned are the objective before each update. The
    support set is unlike the query set, so the two objectives differ."""
    w, lr, inner_lr = 0.7, 0.1, 0.15
    steps = 0 if recipe == "pretrain" else 1
    with jax.enable_x64(True):
        support, query = linear_tasks(seed=3)
        sampler, params = fixed_sampler((support, query)), {"w": jnp.float64(w)}
        if recipe == "pretrain":
            params, _, losses = pretrain(params, hand_linear_loss, sampler, jax.random.key(0),
                                         steps=2, lr=lr)
        else:
            params, _, losses = meta_train(params, hand_linear_loss, sampler,
                                           jax.random.key(0), meta_steps=2, inner_lr=inner_lr,
                                           meta_lr=lr)
        m = v = 0.0
        expected_losses = []
        for t in (1, 2):
            _, loss, grad, _ = closed_form(w, support, query, inner_lr, steps)
            expected_losses.append(loss.mean())
            g = grad.mean()
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            w = w - lr * (m / (1 - 0.9 ** t)) / (math.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        assert float(params["w"]) == pytest.approx(w, rel=1e-12)
        np.testing.assert_allclose(losses, expected_losses, rtol=1e-12)
        other = closed_form(0.7, support, query, inner_lr, 1 - steps)[1].mean()
        assert abs(other - expected_losses[0]) > 0.05 * expected_losses[0]


def test_the_objectives_as_jit_arguments_are_second_order_maml_and_the_plain_loss():
    """``MamlObjective(loss_fn, α)`` is second-order MAML with one step unless told
    otherwise; ``PlainObjective`` is the plain query loss (the linear oracle above)."""
    from minimaml.train import MamlObjective, PlainObjective
    w, inner_lr = 0.7, 0.15
    with jax.enable_x64(True):
        support, query = linear_tasks(seed=4)
        params = {"w": jnp.float64(w)}
        for objective, steps in ((MamlObjective(hand_linear_loss, inner_lr), 1),
                                 (MamlObjective(hand_linear_loss, inner_lr, 2), 2)):
            value, grad = jax.value_and_grad(objective)(params, support, query)
            _, loss, expected, _ = closed_form(w, support, query, inner_lr, steps)
            assert float(value) == pytest.approx(loss.mean(), rel=1e-12)
            assert float(grad["w"]) == pytest.approx(expected.mean(), rel=1e-10)
        value, grad = jax.value_and_grad(PlainObjective(hand_linear_loss))(params, support,
                                                                           query)
        assert float(value) == pytest.approx(closed_form(w, support, query, 0.1, 0)[1].mean(),
                                             rel=1e-12)
        assert float(grad["w"]) == pytest.approx(plain_gradient(w, query), rel=1e-12)


def test_each_step_draws_its_tasks_from_fold_in_key_step():
    """optimize's documented protocol: step n trains on ``sample_tasks(fold_in(key, n))``
    (a fresh batch every step, the same however the steps are split into calls)."""
    def sampler(key):          # one linear task per key: slope and points from the key
        k_slope, k_x = jax.random.split(key)
        x = jax.random.normal(k_x, (1, 6, 1), jnp.float64)
        y = jax.random.uniform(k_slope, (1, 1, 1), jnp.float64, -2, 2) * x
        return (x[:, :3], y[:, :3]), (x[:, 3:], y[:, 3:])

    w, lr, key = 0.3, 0.1, jax.random.key(7)
    with jax.enable_x64(True):
        plain = lambda p, support, query: jnp.mean(
            jax.vmap(hand_linear_loss, in_axes=(None, 0))(p, query))
        params, _, losses = optimize({"w": jnp.float64(w)}, plain, sampler, key, steps=4,
                                     lr=None, optimizer=optax.sgd(lr), steps_per_call=3)
        expected_losses = []
        for step in range(4):
            _, query = sampler(jax.random.fold_in(key, step))
            expected_losses.append(closed_form(w, query, query, 0.1, 0)[1].mean())
            w = w - lr * plain_gradient(w, query)
        assert float(params["w"]) == pytest.approx(w, rel=1e-12)
        np.testing.assert_allclose(losses, expected_losses, rtol=1e-12)
        assert len(set(np.round(expected_losses, 9))) == 4      # four different batches


# The sinusoid family (paper, Section 5.1): A ~ U[0.1, 5], φ ~ U[0, π], x ~ U[-5, 5],
# y = A·sin(x − φ). A model that does not adapt is one function f(x) for all tasks; its
# expected squared error is smallest for the conditional mean
#     f*(x) = E[A]·E_φ[sin(x − φ)] = E[A]·(1/π)∫₀^π sin(x − φ) dφ = −(2/π)·E[A]·cos x,
# and for any f it is E[y²] − E_x[f*²] + E_x[(f − f*)²], with E[y²] = E[A²]/2 (sin²
# averages to 1/2 over a half period of φ, for every x).
A_LOW, A_HIGH, X_LOW, X_HIGH = 0.1, 5.0, -5.0, 5.0
MEAN_A = (A_LOW + A_HIGH) / 2
MEAN_A2 = (A_HIGH ** 3 - A_LOW ** 3) / (3 * (A_HIGH - A_LOW))
MEAN_COS2 = 0.5 + (math.sin(2 * X_HIGH) - math.sin(2 * X_LOW)) / (4 * (X_HIGH - X_LOW))
BEST_PLAIN_MSE = MEAN_A2 / 2 - (2 / math.pi * MEAN_A) ** 2 * MEAN_COS2


def best_plain_function(x):
    return -(2 / math.pi) * MEAN_A * np.cos(x)


def test_the_analytic_optimum_of_the_sinusoid_family():
    """The constants above, and a Monte-Carlo check of the derivation on fresh tasks."""
    assert BEST_PLAIN_MSE == pytest.approx(3.0057, abs=1e-4)
    rng = np.random.default_rng(0)
    amplitude = rng.uniform(A_LOW, A_HIGH, (200_000, 1))
    phase = rng.uniform(0, math.pi, (200_000, 1))
    x = rng.uniform(X_LOW, X_HIGH, (200_000, 10))
    y = amplitude * np.sin(x - phase)
    assert np.mean((best_plain_function(x) - y) ** 2) == pytest.approx(BEST_PLAIN_MSE, rel=0.01)
    assert np.mean((0.9 * best_plain_function(x) - y) ** 2) > BEST_PLAIN_MSE   # a minimum


def test_pretraining_converges_to_the_analytic_optimum():
    """Pretraining minimises the plain loss, so it lands within 10% of the best loss any
    non-adapting model can have (computed exactly over x, no sampling noise)."""
    from minimaml import sinusoid
    from minimaml.nets import mlp_apply
    key = jax.random.key(0)
    params, _, _ = pretrain(sinusoid.init_params(key), sinusoid.sine_loss,
                            sinusoid.task_sampler(25, 10, 10), key, steps=3000, lr=1e-2)
    x = np.linspace(X_LOW, X_HIGH, 20_001)[:, None]
    excess = np.mean((np.asarray(mlp_apply(params, x.astype(np.float32)), np.float64)
                      - best_plain_function(x)) ** 2)
    assert BEST_PLAIN_MSE + excess < 1.1 * BEST_PLAIN_MSE, excess


def test_maml_training_loss_falls_below_what_no_adaptation_can_reach():
    """MAML's objective is the loss after one step on the support set: a meta-trained θ
    gets well below BEST_PLAIN_MSE, which bounds the plain (pretraining) objective."""
    from minimaml import sinusoid
    key = jax.random.key(0)
    _, _, losses = meta_train(sinusoid.init_params(key), sinusoid.sine_loss,
                              sinusoid.task_sampler(25, 10, 10), key, meta_steps=2500,
                              inner_lr=0.01, steps_per_call=500)
    assert losses[:300].mean() > BEST_PLAIN_MSE          # it starts above the bound...
    assert losses[-300:].mean() < 0.6 * BEST_PLAIN_MSE   # ...and ends far below it (~1.2)


# --- Omniglot: an instrumented meta-test ------------------------------------------------

def decodable_omniglot(num_characters=40, seed=0):
    """Synthetic Omniglot: random binary drawings, and a table from the bytes of every
    drawing, at every quarter turn, back to its character."""
    from minimaml.omniglot import Omniglot
    rng = np.random.default_rng(seed)
    images = (rng.random((num_characters, 20, 28, 28)) < 0.2).astype(np.float32)
    table = {np.rot90(image, turns).tobytes(): char
             for char in range(num_characters) for image in images[char]
             for turns in range(4)}
    data = Omniglot(images, np.arange(1, num_characters + 1),
                    np.array(["synthetic"] * num_characters))
    return data, table


def characters_of(images, table):
    """The characters that the drawings in ``images`` (..., 28, 28[, 1]) belong to."""
    flat = np.asarray(images, np.float32).reshape(-1, 28, 28)
    return {table[image.tobytes()] for image in flat}


def test_omniglot_meta_test_sees_only_unseen_characters_for_eval_inner_steps(monkeypatch):
    from minimaml import omniglot as og
    from minimaml.omniglot import experiment, metatest, model
    data, table = decodable_omniglot()
    config = og.paper_config(5, 1, meta_steps=2, meta_batch=2, filters=4, blocks=1,
                             first_order=True, train_characters=30, eval_tasks=4,
                             eval_queries=2, inner_steps=1, eval_inner_steps=2,
                             steps_per_call=2)
    trained_on, meta_tests = [], []
    real_sampler, real_curves = experiment.task_sampler, model.finetune_curves

    def recording_sampler(images, *args, **kwargs):
        trained_on.append(characters_of(images, table))
        return real_sampler(images, *args, **kwargs)

    def recording_curves(params, loss_fn, support, query, inner_lr, steps, **kwargs):
        curves = real_curves(params, loss_fn, support, query, inner_lr, steps, **kwargs)
        meta_tests.append({"characters": characters_of(support[0], table)
                           | characters_of(query[0], table), "inner_lr": inner_lr,
                           "steps": steps, "curves": curves})
        return curves

    monkeypatch.setattr(experiment, "task_sampler", recording_sampler)
    monkeypatch.setattr(model, "finetune_curves", recording_curves)
    monkeypatch.setattr(metatest, "finetune_curves", recording_curves)
    _, history = og.train(config, data, progress=False)

    assert len(trained_on) == 1 and len(trained_on[0]) == 30, "training saw no sampler"
    assert meta_tests, "the meta-test no longer goes through finetune_curves"
    test_characters = set(range(40)) - trained_on[0]
    for run in meta_tests:
        assert run["characters"] <= test_characters          # unseen characters only
        assert not run["characters"] & trained_on[0]
        assert run["steps"] == config.eval_inner_steps != config.inner_steps
        assert run["inner_lr"] == config.inner_lr
        assert run["curves"].shape == (config.eval_tasks, config.eval_inner_steps + 1)
    # 4 tasks x 5 ways: most of the 10 test characters show up
    assert len(set().union(*(run["characters"] for run in meta_tests))) >= 5
    # the accuracy reported is the one after eval_inner_steps steps
    assert history["evals"][-1]["accuracy"] == pytest.approx(
        float(np.mean(meta_tests[-1]["curves"][:, -1])), abs=1e-6)


# --- the playground: each label on the θ it names --------------------------------------

def read_shipped(name):
    """An MLP's params read straight from the shipped npz (keys "<layer>/w", "<layer>/b")."""
    with np.load(REPO / "minimaml" / "data" / f"sinusoid_{name}.npz") as arrays:
        layers = sorted({int(key.split("/")[0]) for key in arrays.files})
        return [{"w": np.array(arrays[f"{i}/w"]), "b": np.array(arrays[f"{i}/b"])}
                for i in layers]


def hand_adaptation(params, support_x, support_y, query_x, query_y, grid, inner_lr, steps):
    """ReLU MLP fine-tuned by plain SGD on the support MSE, written here: predictions on
    ``grid`` after ``steps`` steps and the query MSE after each of 0..max steps."""
    def forward(p, x):
        for layer in p[:-1]:
            x = jnp.maximum(x @ layer["w"] + layer["b"], 0.0)
        return x @ p[-1]["w"] + p[-1]["b"]

    @jax.jit
    def step(p):
        grad = jax.grad(lambda q: jnp.mean((forward(q, support_x) - support_y) ** 2))(p)
        return jax.tree.map(lambda a, g: a - inner_lr * g, p, grad)

    query_mse, predictions = [], None
    for n in range(steps[1] + 1):
        if n == steps[0]:
            predictions = np.asarray(forward(params, grid))[:, 0]
        query_mse.append(float(jnp.mean((forward(params, query_x) - query_y) ** 2)))
        params = step(params)
    return predictions, np.array(query_mse)


def test_each_playground_curve_is_the_theta_its_label_names():
    """The bug this catches: the widget drawing the pretrained θ under "MAML" (or the
    reverse). Curves are found by the colour the legend the reader sees gives each name,
    not by the widget's own bookkeeping; θ is read from the shipped files, not through
    the widget."""
    import re

    import ipywidgets

    from minimaml.widgets import GRID, MAX_STEPS, playground
    shots, inner_lr, steps = 10, 0.02, 5
    pg = playground(seed=4, shots=shots, inner_lr=inner_lr, steps=steps)
    inner_lr = pg.inner_lr_slider.value          # what the log slider holds
    task = pg.task
    legends = [w.value for w in pg.children
               if isinstance(w, ipywidgets.HTML) and "from MAML" in w.value]
    assert len(legends) == 1, "one legend naming the initialisations"
    color_of = {name: color for color, name in
                re.findall(r"color:(#[0-9a-fA-F]+)'>━ from (\w+)", legends[0])}
    assert {"MAML", "pretrained"} <= set(color_of)
    fits = [(curve, color) for panel in pg.drawing.fits
            for curve, color in zip(panel.frame(steps), panel.frame_colors)]
    mse = pg.drawing.mse
    mse_curves = list(zip(mse.static_curves(), mse.static_colors))
    for name in ("MAML", "pretrained"):
        fit = [curve for curve, color in fits if color == color_of[name]]
        curve = [c for c, color in mse_curves if color == color_of[name]]
        assert len(fit) == 1 and len(curve) == 1, f"no single fit/MSE curve for {name!r}"
        predictions, query_mse = hand_adaptation(
            read_shipped({"MAML": "maml", "pretrained": "pretrained"}[name]),
            task.support_x[:shots], task.support_y[:shots], task.query_x, task.query_y,
            GRID, inner_lr, (steps, MAX_STEPS))
        np.testing.assert_allclose(fit[0], predictions, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(curve[0], query_mse, rtol=1e-3)
    # The two differ by far more than the tolerance: a swap cannot pass.
    maml_fit, _ = hand_adaptation(read_shipped("maml"), task.support_x[:shots],
                                  task.support_y[:shots], task.query_x, task.query_y, GRID,
                                  inner_lr, (steps, steps))
    pre_fit, _ = hand_adaptation(read_shipped("pretrained"), task.support_x[:shots],
                                 task.support_y[:shots], task.query_x, task.query_y, GRID,
                                 inner_lr, (steps, steps))
    assert np.max(np.abs(maml_fit - pre_fit)) > 0.5


def test_playground_divergence_rule():
    """diverged_at: the first step whose query MSE is not finite *or* above DIVERGED_MSE
    (a finite but huge error counts), or whose predictions are not all finite."""
    from minimaml.widgets import DIVERGED_MSE, Adaptation, diverged_at
    fine = np.zeros((4, 3))
    mse = np.array([1.0, 10.0, 2 * DIVERGED_MSE, 5 * DIVERGED_MSE])
    assert diverged_at(Adaptation(fine, mse, mse)) == 2                 # finite, too large
    assert diverged_at(Adaptation(fine, np.array([1.0, np.nan, 1.0, 1.0]), mse)) == 1
    broken = fine.copy()
    broken[3, 1] = np.inf
    assert diverged_at(Adaptation(broken, np.ones(4), mse)) == 3         # predictions
    assert diverged_at(Adaptation(fine, np.ones(4), mse)) is None
