"""Your own model: a Flax NNX module and an Equinox module through maml_objective,
meta_train and the family, unchanged (the recipes in the README and chapter 8).

Both libraries are in the ``dev`` extra; under CI a missing one fails these tests.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minimaml import family, maml, meta_train, mse_loss
from minimaml.sinusoid import sample_tasks, sine_loss, task_sampler


if os.environ.get("CI"):
    import equinox as eqx
    from flax import nnx
else:
    eqx = pytest.importorskip("equinox")
    nnx = pytest.importorskip("flax.nnx")

TASKS = sample_tasks(jax.random.key(1), 4, 10, 10)


class NnxMLP(nnx.Module):
    """The paper's 1-40-40-1 regressor as a Flax NNX module."""

    def __init__(self, rngs, hidden=40):
        self.layer1 = nnx.Linear(1, hidden, rngs=rngs)
        self.layer2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(self.layer1(x))
        return self.head(jax.nn.relu(self.layer2(x)))


def nnx_recipe(model):
    """The README's recipe: split once, merge inside apply."""
    graphdef, params = nnx.split(model)

    def apply_fn(params, x):
        return nnx.merge(graphdef, params)(x)
    return params, mse_loss(apply_fn)


def as_minimaml_mlp(kernels_and_biases):
    return [{"w": w, "b": b} for w, b in kernels_and_biases]


def test_nnx_module_gives_the_same_meta_objective_and_gradient_as_the_plain_mlp():
    model = NnxMLP(nnx.Rngs(0))
    params, loss_fn = nnx_recipe(model)
    layers = [model.layer1, model.layer2, model.head]
    plain = as_minimaml_mlp([(layer.kernel[...], layer.bias[...]) for layer in layers])
    value, grads = jax.value_and_grad(maml.maml_objective)(params, loss_fn, TASKS.support,
                                                           TASKS.query, 0.01, 2)
    plain_value, plain_grads = jax.value_and_grad(maml.maml_objective)(
        plain, sine_loss, TASKS.support, TASKS.query, 0.01, 2)
    np.testing.assert_allclose(value, plain_value, rtol=1e-6)
    for name, grad in zip(("layer1", "layer2", "head"), plain_grads):
        np.testing.assert_allclose(grads[name]["kernel"][...], grad["w"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(grads[name]["bias"][...], grad["b"], rtol=1e-4, atol=1e-6)


def test_nnx_module_meta_trains_and_the_trained_state_goes_back_into_the_module():
    model = NnxMLP(nnx.Rngs(0))
    params, loss_fn = nnx_recipe(model)
    trained, _, losses = meta_train(params, loss_fn, task_sampler(10, 10, 10), jax.random.key(2),
                                    meta_steps=300, inner_lr=0.01, steps_per_call=100)
    assert np.mean(losses[-50:]) < np.mean(losses[:50])
    nnx.update(model, trained)
    x = jnp.linspace(-5, 5, 7)[:, None]
    np.testing.assert_allclose(model(x), loss_fn.apply_fn(trained, x))


def test_nnx_module_through_the_family_anil_by_path_and_metasgd():
    model = NnxMLP(nnx.Rngs(0))
    params, loss_fn = nnx_recipe(model)
    head = lambda path, leaf: path[0].key == "head"          # noqa: E731
    adapted = maml.inner_loop(params, loss_fn, (TASKS.support_x[0], TASKS.support_y[0]), 0.1,
                              2, adapt=head)
    np.testing.assert_array_equal(adapted["layer1"]["kernel"][...],
                                  params["layer1"]["kernel"][...])
    assert not np.array_equal(adapted["head"]["kernel"][...], params["head"]["kernel"][...])
    for algorithm, options in (("anil", {"head": head}), ("metasgd", {})):
        learned, _, losses = family.meta_train(algorithm, params, loss_fn,
                                               task_sampler(5, 10, 10), jax.random.key(2),
                                               meta_steps=20, inner_lr=0.01, options=options)
        assert np.all(np.isfinite(losses))
        assert jax.tree.structure(learned.params) == jax.tree.structure(params)


class NnxBatchNormNet(nnx.Module):
    """BatchNorm in training mode (batch statistics), as MAML's own conv net uses it."""

    def __init__(self, rngs):
        self.hidden = nnx.Linear(1, 16, rngs=rngs)
        self.norm = nnx.BatchNorm(16, use_running_average=False, rngs=rngs)
        self.head = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.head(jax.nn.relu(self.norm(self.hidden(x))))


def test_nnx_batchnorm_with_batch_statistics_meta_trains_and_running_stats_stay_out():
    """Running averages are state, not parameters: split apart, kept constant. MAML's
    BatchNorm reads batch statistics only (train and test), so they are never used."""
    model = NnxBatchNormNet(nnx.Rngs(0))
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)

    def apply_fn(params, x):
        # copy=True: fresh variables inside the trace, which BatchNorm may update and drop.
        return nnx.merge(graphdef, params, stats, copy=True)(x)

    loss_fn = mse_loss(apply_fn)
    trained, _, losses = meta_train(params, loss_fn, task_sampler(10, 10, 10), jax.random.key(2),
                                    meta_steps=100, inner_lr=0.01, steps_per_call=50)
    assert np.all(np.isfinite(losses)) and np.mean(losses[-20:]) < np.mean(losses[:20])
    assert "norm" in trained and "mean" not in trained["norm"]      # stats are not trained
    np.testing.assert_array_equal(stats["norm"]["mean"][...], 0.0)


def eqx_recipe(model):
    """The README's recipe: partition the arrays out, combine inside apply."""
    params, static = eqx.partition(model, eqx.is_array)

    def apply_fn(params, x):
        return jax.vmap(eqx.combine(params, static))(x)
    return params, mse_loss(apply_fn)


def test_equinox_module_gives_the_same_meta_objective_as_the_plain_mlp_and_meta_trains():
    model = eqx.nn.MLP(1, 1, 40, 2, activation=jax.nn.relu, key=jax.random.key(0))
    params, loss_fn = eqx_recipe(model)
    plain = as_minimaml_mlp([(layer.weight.T, layer.bias) for layer in model.layers])
    np.testing.assert_allclose(
        maml.maml_objective(params, loss_fn, TASKS.support, TASKS.query, 0.01, 2),
        maml.maml_objective(plain, sine_loss, TASKS.support, TASKS.query, 0.01, 2), rtol=1e-6)
    grads = jax.grad(maml.maml_objective)(params, loss_fn, TASKS.support, TASKS.query, 0.01)
    plain_grads = jax.grad(maml.maml_objective)(plain, sine_loss, TASKS.support, TASKS.query,
                                                0.01)
    np.testing.assert_allclose(grads.layers[1].weight.T, plain_grads[1]["w"], rtol=1e-4,
                               atol=1e-6)
    trained, _, losses = meta_train(params, loss_fn, task_sampler(10, 10, 10), jax.random.key(2),
                                    meta_steps=300, inner_lr=0.01, steps_per_call=100)
    assert np.mean(losses[-50:]) < np.mean(losses[:50])
    trained_model = eqx.combine(trained, eqx.partition(model, eqx.is_array)[1])
    x = jnp.linspace(-5, 5, 7)[:, None]
    np.testing.assert_allclose(jax.vmap(trained_model)(x), loss_fn.apply_fn(trained, x))
    learned, _, _ = family.meta_train("anil", params, loss_fn, task_sampler(5, 10, 10),
                                      jax.random.key(2), meta_steps=10, inner_lr=0.01,
                                      options={"head": lambda path, leaf: path[1].idx == 2})
    assert sum(learned.adapt) == 2
