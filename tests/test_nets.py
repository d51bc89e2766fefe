"""The networks (minimaml/nets.py) against what the paper and the official code specify,
computed here: initial distributions, and forward passes written out with numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minimaml.nets import conv2d_native, conv_apply, conv_init, mlp_apply, mlp_init

# std of a standard normal truncated to [-2, 2]: sqrt(1 - 4·φ(2) / (Φ(2) − Φ(−2)))
TRUNCATED_STD = float(np.sqrt(1 - 4 * np.exp(-2) / np.sqrt(2 * np.pi) / 0.9544997361))


def test_mlp_init_is_truncated_normal_weights_and_zero_biases():
    params = mlp_init(jax.random.key(0), (3, 200, 300, 2), weight_std=0.5)
    assert [layer["w"].shape for layer in params] == [(3, 200), (200, 300), (300, 2)]
    assert [layer["b"].shape for layer in params] == [(200,), (300,), (2,)]
    for layer in params:
        np.testing.assert_array_equal(layer["b"], 0.0)
    w = np.asarray(params[1]["w"])
    assert np.abs(w).max() <= 2 * 0.5 + 1e-6 and np.abs(w).max() > 0.99
    assert w.std() == pytest.approx(0.5 * TRUNCATED_STD, rel=0.02)
    assert abs(w.mean()) < 0.01
    # one key per layer: the layers are not copies of each other
    assert not np.allclose(np.ravel(params[0]["w"])[:6], np.ravel(params[2]["w"])[:6])
    for sizes in ((3,), (1, 0, 1)):        # at least two widths, each at least one
        with pytest.raises(ValueError, match="sizes"):
            mlp_init(jax.random.key(0), sizes)


def test_mlp_apply_by_hand():
    rng = np.random.default_rng(0)
    params = [{"w": rng.normal(size=(2, 4)), "b": rng.normal(size=4)},
              {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3)},
              {"w": rng.normal(size=(3, 1)), "b": rng.normal(size=1)}]
    x = rng.normal(size=(5, 2))
    h = np.maximum(x @ params[0]["w"] + params[0]["b"], 0)
    h = np.maximum(h @ params[1]["w"] + params[1]["b"], 0)
    expected = h @ params[2]["w"] + params[2]["b"]
    with jax.enable_x64(True):
        np.testing.assert_allclose(mlp_apply(jax.tree.map(jnp.asarray, params), x), expected,
                                   rtol=1e-12)


def test_default_networks_are_the_papers():
    """Section 5: the sinusoid regressor 1-40-40-1 (sinusoid.init_params) and, for Omniglot,
    4 blocks of 64 3x3 filters and a 5-way linear layer by default."""
    shapes = [p["w"].shape for p in conv_init(jax.random.key(0))]
    assert shapes == [(3, 3, 1, 64), (3, 3, 64, 64), (3, 3, 64, 64), (3, 3, 64, 64), (64, 5)]
    shapes = [p["w"].shape for p in mlp_init(jax.random.key(0))]
    assert shapes == [(1, 40), (40, 40), (40, 1)]
    w = np.concatenate([np.ravel(p["w"]) for p in mlp_init(jax.random.key(1))])
    assert w.std() == pytest.approx(0.01 * TRUNCATED_STD, rel=0.05)   # official code: 0.01


def test_conv_init_is_glorot_uniform_with_unit_scale_and_zero_offset():
    params = conv_init(jax.random.key(0), num_classes=7, in_channels=2, filters=32, blocks=3)
    assert len(params) == 4
    assert [p["w"].shape for p in params] == [(3, 3, 2, 32), (3, 3, 32, 32), (3, 3, 32, 32),
                                              (32, 7)]
    for block in params[:-1]:
        np.testing.assert_array_equal(block["scale"], 1.0)
        np.testing.assert_array_equal(block["offset"], 0.0)
    np.testing.assert_array_equal(params[-1]["b"], 0.0)
    w = np.asarray(params[1]["w"])
    limit = np.sqrt(6 / (9 * 32 + 9 * 32))           # Glorot & Bengio 2010: U[-l, l]
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert w.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)


def reference_conv_net(params, x):
    """The paper's classifier written out: per block a 3x3 stride-2 SAME convolution,
    BatchNorm over (batch, height, width) per channel, ReLU; the spatial mean; a linear
    layer."""
    x = np.asarray(x, np.float64)
    for block in params[:-1]:
        x = np.asarray(conv2d_native(jnp.asarray(x), jnp.asarray(block["w"])), np.float64)
        mean = x.mean(axis=(0, 1, 2))
        var = x.var(axis=(0, 1, 2))
        x = (x - mean) / np.sqrt(var + 1e-5) * np.asarray(block["scale"]) + np.asarray(
            block["offset"])
        x = np.maximum(x, 0)
    return x.mean(axis=(1, 2)) @ np.asarray(params[-1]["w"]) + np.asarray(params[-1]["b"])


def test_conv_apply_by_hand():
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(0), 3)
        params = jax.tree.map(lambda a: a.astype(jnp.float64),
                              conv_init(keys[0], 5, filters=6, blocks=3))
        rng = np.random.default_rng(1)
        for block in params[:-1]:      # non-trivial scale and offset
            block["scale"] = jnp.asarray(rng.uniform(0.5, 2.0, 6))
            block["offset"] = jnp.asarray(rng.normal(size=6))
        params[-1]["b"] = jnp.asarray(rng.normal(size=5))
        x = jax.random.uniform(keys[1], (7, 14, 14, 1), jnp.float64)
        expected = reference_conv_net(params, x)
        assert expected.shape == (7, 5)   # 14 -> 7 -> 4 -> 2, mean, linear
        apply = jax.jit(conv_apply, static_argnums=2)
        for conv in (None, conv2d_native):
            np.testing.assert_allclose(apply(params, x, conv), expected, rtol=1e-9, atol=1e-10)
