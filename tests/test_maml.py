"""The MAML objective and its meta-gradient (minimaml/maml.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minimaml import maml
from minimaml.losses import mse_loss
from minimaml.nets import mlp_apply, mlp_init
from minimaml.sinusoid import sample_tasks


def tanh_apply(params, x):
    """A smooth MLP: its Hessian is rich everywhere (ReLU's is zero almost everywhere)."""
    *hidden, last = params
    for layer in hidden:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ last["w"] + last["b"]


def make_problem(key, apply_fn, sizes=(1, 8, 8, 1), weight_std=0.5, tasks=4, k=5, q=6):
    """A tiny float64 problem: params and a batch of sinusoid tasks."""
    k_init, k_tasks = jax.random.split(key)
    params = jax.tree.map(lambda a: a.astype(jnp.float64),
                          mlp_init(k_init, sizes, weight_std=weight_std))
    batch = jax.tree.map(lambda a: a.astype(jnp.float64), sample_tasks(k_tasks, tasks, k, q))
    return params, mse_loss(apply_fn), batch


# The meta-gradient against an explicit float64 chain rule (with the first-order and the
# plain gradient shown to miss it) and the objective in closed form: tests/test_oracles.py.


def test_first_order_drops_the_hessian_term_and_equals_query_gradient_at_adapted():
    with jax.enable_x64(True):
        params, loss_fn, tasks = make_problem(jax.random.key(1), tanh_apply)
        inner_lr, steps = 0.3, 2
        second = jax.grad(maml.maml_objective)(params, loss_fn, tasks.support, tasks.query,
                                               inner_lr, steps)
        first = jax.grad(maml.maml_objective)(params, loss_fn, tasks.support, tasks.query,
                                              inner_lr, steps, first_order=True)

        # FOMAML = mean over tasks of ∇L_query evaluated at the adapted params θ'_i.
        def query_grad_at_adapted(support, query):
            adapted = maml.inner_loop(params, loss_fn, support, inner_lr, steps)
            return jax.grad(loss_fn)(adapted, query)
        expected = jax.tree.map(lambda g: g.mean(0),
                                jax.vmap(query_grad_at_adapted)(tasks.support, tasks.query))
        for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)

        # ... and differs from second order where the Hessian matters.
        flat_first = jnp.concatenate([g.ravel() for g in jax.tree.leaves(first)])
        flat_second = jnp.concatenate([g.ravel() for g in jax.tree.leaves(second)])
        rel = jnp.linalg.norm(flat_first - flat_second) / jnp.linalg.norm(flat_second)
        assert rel > 1e-2, rel


def test_hand_derived_one_step_meta_gradient():
    """(I − α∇²L_s(θ)) ∇L_q(θ'), with a Hessian-vector product, equals jax.grad."""
    with jax.enable_x64(True):
        params, loss_fn, tasks = make_problem(jax.random.key(3), tanh_apply, tasks=1)
        support = jax.tree.map(lambda a: a[0], tasks.support)
        query = jax.tree.map(lambda a: a[0], tasks.query)
        alpha = 0.2
        adapted = maml.inner_loop(params, loss_fn, support, alpha, 1)
        g_query = jax.grad(loss_fn)(adapted, query)
        _, hvp = jax.jvp(lambda p: jax.grad(loss_fn)(p, support), (params,), (g_query,))
        by_hand = jax.tree.map(lambda g, h: g - alpha * h, g_query, hvp)
        auto = jax.grad(maml.task_loss)(params, loss_fn, support, query, alpha, 1)
        for a, b in zip(jax.tree.leaves(by_hand), jax.tree.leaves(auto)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_vmap_over_tasks_equals_python_loop():
    params = mlp_init(jax.random.key(0))
    tasks = sample_tasks(jax.random.key(1), 5, 10, 10)
    loss_fn = mse_loss(mlp_apply)
    batched = maml.maml_objective(params, loss_fn, tasks.support, tasks.query, 0.01, 2)
    one_task = jax.jit(maml.task_loss, static_argnums=(1, 4, 5))
    looped = np.mean([
        one_task(params, loss_fn, (tasks.support_x[i], tasks.support_y[i]),
                       (tasks.query_x[i], tasks.query_y[i]), 0.01, 2)
        for i in range(5)])
    np.testing.assert_allclose(batched, looped, rtol=1e-6)
    g_batched = jax.grad(maml.maml_objective)(params, loss_fn, tasks.support, tasks.query, 0.01)
    one_task_grad = jax.jit(jax.grad(maml.task_loss), static_argnums=(1, 4))   # one compile
    g_looped = [one_task_grad(
        params, loss_fn, (tasks.support_x[i], tasks.support_y[i]),
        (tasks.query_x[i], tasks.query_y[i]), 0.01) for i in range(5)]
    for leaf_b, *leaves_l in zip(jax.tree.leaves(g_batched), *map(jax.tree.leaves, g_looped)):
        np.testing.assert_allclose(leaf_b, np.mean(leaves_l, axis=0), rtol=1e-5, atol=1e-7)


def test_inner_loop_trajectory_and_zero_steps():
    params = mlp_init(jax.random.key(0))
    tasks = sample_tasks(jax.random.key(1), 1, 10, 10)
    support = (tasks.support_x[0], tasks.support_y[0])
    loss_fn = mse_loss(mlp_apply)
    adapted, traj = maml.inner_loop(params, loss_fn, support, 0.01, 4, trajectory=True)
    assert traj.losses.shape == (5,)
    # Step n of the trajectory is n explicit SGD steps.
    manual = params
    for n in range(5):
        for a, b in zip(jax.tree.leaves(manual), jax.tree.leaves(jax.tree.map(lambda t: t[n], traj.params))):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(traj.losses[n], loss_fn(manual, support), rtol=1e-6)
        manual, _ = maml.sgd_step(manual, loss_fn, support, 0.01)
    for a, b in zip(jax.tree.leaves(adapted), jax.tree.leaves(jax.tree.map(lambda t: t[-1], traj.params))):
        np.testing.assert_array_equal(a, b)
    assert traj.losses[-1] < traj.losses[0]
    same = maml.inner_loop(params, loss_fn, support, 0.01, 0)
    for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("inner_steps", [1, 5, 23, 100])
def test_remat_gives_the_same_adapted_params_and_meta_gradient(inner_steps):
    params = mlp_init(jax.random.key(0))
    tasks = sample_tasks(jax.random.key(1), 3, 10, 10)
    loss_fn = mse_loss(mlp_apply)
    support = (tasks.support_x[0], tasks.support_y[0])
    plain = maml.inner_loop(params, loss_fn, support, 0.01, inner_steps)
    nested = maml.inner_loop(params, loss_fn, support, 0.01, inner_steps, remat=True)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(nested)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    def meta_grad(remat):
        return jax.jit(jax.grad(lambda p: maml.maml_objective(
            p, loss_fn, tasks.support, tasks.query, 0.01, inner_steps, remat=remat)))(params)
    g, g_remat = meta_grad(False), meta_grad(True)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_remat)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_remat_keeps_memory_nearly_flat_in_the_number_of_steps():
    """XLA's planned scratch memory: 100 remat steps within 4x of one step (plain: ~40x)."""
    params = mlp_init(jax.random.key(0))
    tasks = sample_tasks(jax.random.key(1), 25, 10, 10)
    loss_fn = mse_loss(mlp_apply)

    def scratch_bytes(steps, remat):
        grad = jax.jit(jax.grad(lambda p: maml.maml_objective(
            p, loss_fn, tasks.support, tasks.query, 0.01, steps, remat=remat)))
        return grad.lower(params).compile().memory_analysis().temp_size_in_bytes

    one = scratch_bytes(1, True)
    assert scratch_bytes(100, True) <= 4 * one
    assert scratch_bytes(100, False) > 10 * one


@pytest.mark.parametrize("inner_lr", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_inner_lr(inner_lr):
    params = mlp_init(jax.random.key(0))
    support = (jnp.zeros((5, 1)), jnp.zeros((5, 1)))
    with pytest.raises(ValueError, match=r"inner_lr must be a finite number > 0"):
        maml.inner_loop(params, mse_loss(mlp_apply), support, inner_lr, 1)


@pytest.mark.parametrize("steps", [-1, 1.5])
def test_bad_inner_steps(steps):
    params = mlp_init(jax.random.key(0))
    support = (jnp.zeros((5, 1)), jnp.zeros((5, 1)))
    with pytest.raises(ValueError, match=r"inner_steps must be an integer >= 0"):
        maml.inner_loop(params, mse_loss(mlp_apply), support, 0.01, steps)


@pytest.mark.parametrize("x_rows, y_rows", [(5, 4), (4, 5)])
def test_xy_shape_mismatch(x_rows, y_rows):
    params = mlp_init(jax.random.key(0))
    with pytest.raises(ValueError, match=rf"x and y must agree.*x: \({x_rows}, 1\), "
                                         rf"y: \({y_rows}, 1\)"):
        maml.inner_loop(params, mse_loss(mlp_apply),
                        (jnp.zeros((x_rows, 1)), jnp.zeros((y_rows, 1))), 0.01, 1)
