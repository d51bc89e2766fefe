"""The public functions' defaults and the edges of what they accept (the survivors of the
fresh mutation sample in TESTING.md: each test fails under one of them)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minimaml import finetune_curves, inner_loop, mlp_apply, mlp_init, mse_loss


def _task(key, k=5):
    x = jax.random.uniform(key, (k, 1), minval=-5.0, maxval=5.0)
    return x, jnp.sin(x)


def test_inner_loop_differentiates_through_its_step_by_default():
    """The paper's MAML is second order; inner_loop's default must be too."""
    loss_fn = mse_loss(mlp_apply)
    params = mlp_init(jax.random.key(0), (1, 8, 1))
    support, query = _task(jax.random.key(1)), _task(jax.random.key(2))

    def meta_loss(p, **kwargs):
        return loss_fn(inner_loop(p, loss_fn, support, 0.1, 1, **kwargs), query)

    default = jax.grad(meta_loss)(params)
    second = jax.grad(lambda p: meta_loss(p, first_order=False))(params)
    first = jax.grad(lambda p: meta_loss(p, first_order=True))(params)
    for a, b in zip(jax.tree.leaves(default), jax.tree.leaves(second)):
        np.testing.assert_array_equal(a, b)
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree.leaves(default), jax.tree.leaves(first))) > 1e-4


def test_mse_loss_takes_one_dimensional_targets():
    """A vector of predictions against a vector of targets: (n,) and (n,) is allowed."""
    loss = mse_loss(lambda params, x: params * x)
    x, y = jnp.arange(4.0), jnp.arange(4.0) * 2
    assert float(loss(2.0, (x, y))) == 0.0
    assert float(loss(1.0, (x, y))) == pytest.approx(np.mean(np.arange(4.0) ** 2))


def test_mlp_init_without_hidden_layers_is_a_linear_model():
    params = mlp_init(jax.random.key(0), (3, 2))
    assert len(params) == 1 and params[0]["w"].shape == (3, 2)
    assert mlp_apply(params, jnp.ones((4, 3))).shape == (4, 2)


def test_finetune_curves_refuses_zero_tasks():
    loss_fn = mse_loss(mlp_apply)
    params = mlp_init(jax.random.key(0), (1, 8, 1))
    empty = (jnp.zeros((0, 5, 1)), jnp.zeros((0, 5, 1)))
    with pytest.raises(ValueError, match="task"):
        finetune_curves(params, loss_fn, empty, empty, 0.01, 1)
