"""Omniglot: loader (real zip/PNG path, hashes, errors, cache), splits, sampler, conv
net (im2col vs native), the conv-MAML meta-gradient, a short training run, resuming.

Data: ``$MINIMAML_OMNIGLOT_DIR`` (``.ci/run`` points it at the real data). Where it is not
set, the tests fetch the official archives through the real download path; offline, the
tests that need the data skip with the one-line reason — except in CI (``CI`` set), where
missing data is a failure, never a skip.
"""
import dataclasses
import json
import pathlib
import shutil
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minimaml import omniglot as og
from fakes import data_or_skip
from minimaml.maml import maml_objective
from minimaml.nets import batch_norm, conv2d_im2col, conv2d_native, conv_apply, conv_init

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA_DIR = og.data_dir()
SMALL1 = "images_background_small1.zip"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("omniglot_cache")


@pytest.fixture(scope="session")
def small1_zip(cache_dir):
    """The official small1 archive: the local copy, or downloaded (hash-checked) by pooch."""
    if DATA_DIR is not None and (DATA_DIR / SMALL1).exists():
        return DATA_DIR / SMALL1
    return data_or_skip(lambda: og.download(SMALL1, cache_dir, progress=False))


@pytest.fixture(scope="session")
def full_data(cache_dir):
    """All 1,623 characters: from $MINIMAML_OMNIGLOT_DIR, else the official download."""
    return data_or_skip(lambda: og.load(None, cache_dir=cache_dir, progress=False))


@pytest.fixture(scope="session")
def small1(small1_zip, cache_dir):
    return og.load(small1_zip, cache_dir=cache_dir, progress=False)


# --- loader ----------------------------------------------------------------------

def test_small_zip_loads_through_png_path(small1, small1_zip, full_data):
    assert og.verify(small1_zip) == og.OFFICIAL_SHA256[SMALL1]
    assert small1.images.shape == (136, 20, 28, 28)
    assert small1.images.dtype == np.float32
    assert len(set(small1.alphabets)) == 5
    assert 0.0 <= small1.images.min() and small1.images.max() <= 1.0
    # ink is 1: most of each drawing is background (0)
    assert 0.02 < small1.images.mean() < 0.3
    # the PNGs and the npz conversion give the same arrays for the same character ids
    rows = np.searchsorted(full_data.ids, small1.ids)
    np.testing.assert_array_equal(full_data.ids[rows], small1.ids)
    np.testing.assert_array_equal(full_data.images[rows], small1.images)
    np.testing.assert_array_equal(full_data.alphabets[rows], small1.alphabets)


def test_full_data_has_every_character(full_data):
    assert full_data.images.shape == (1623, 20, 28, 28)
    np.testing.assert_array_equal(full_data.ids, np.arange(1, 1624))
    assert len(set(full_data.alphabets)) == 50
    assert full_data.alphabets[0] == "Arcadian" and full_data.alphabets[964] == "Angelic"


def test_hash_mismatch_names_the_file(small1_zip, tmp_path):
    bad = tmp_path / SMALL1
    raw = bytearray(small1_zip.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"{SMALL1}.*sha256"):
        og.load(bad, cache_dir=tmp_path / "cache")


def test_truncated_archive_names_the_file(small1_zip, tmp_path):
    # under an unknown name (no hash to check) the zip reader itself must object
    cut = tmp_path / "my_omniglot.zip"
    cut.write_bytes(small1_zip.read_bytes()[:600_000])
    with pytest.raises(ValueError, match="my_omniglot.zip.*truncated or corrupt"):
        og.load(cut, cache_dir=tmp_path / "cache")
    # under the official name the hash check catches it first
    official = tmp_path / SMALL1
    official.write_bytes(small1_zip.read_bytes()[:600_000])
    with pytest.raises(ValueError, match=f"{SMALL1}.*sha256"):
        og.load(official, cache_dir=tmp_path / "cache")


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        og.load(tmp_path / "no_such_dir", cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        og.load(tmp_path / "empty", cache_dir=tmp_path)
    odd = tmp_path / "images.tar"
    odd.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="images.tar.*unsupported"):
        og.load(odd, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="name must be one of"):
        og.download("images_everything.zip", tmp_path)


def test_png_directory_source(small1_zip, small1, tmp_path):
    shutil.unpack_archive(small1_zip, tmp_path / "unzipped")
    data = og.load(tmp_path / "unzipped", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(data.images, small1.images)
    np.testing.assert_array_equal(data.ids, small1.ids)


def test_bad_cache_is_rebuilt_not_trusted(small1_zip, small1, tmp_path):
    cache = tmp_path / "cache"
    og.load(small1_zip, cache_dir=cache)
    (cache_file,) = cache.glob("omniglot28_*.npz")
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="bad Omniglot cache"):
        rebuilt = og.load(small1_zip, cache_dir=cache)
    np.testing.assert_array_equal(rebuilt.images, small1.images)
    # a cache that reads fine but holds other numbers is rejected by its key
    with np.load(cache_file) as data:
        arrays = dict(data)
    good_key = arrays["key"]
    arrays["key"] = np.array("0" * 64)
    np.savez(cache_file, **arrays)
    with pytest.warns(UserWarning, match="bad Omniglot cache"):
        og.load(small1_zip, cache_dir=cache)
    # the right key but one character's id and alphabet too many, or too few, for the images
    with np.load(cache_file) as data:
        arrays = dict(data)
    for ids, alphabets in ((np.append(arrays["ids"], 9999), np.append(arrays["alphabets"], "x")),
                           (arrays["ids"][:-1], arrays["alphabets"][:-1])):
        np.savez(cache_file, **{**arrays, "key": good_key, "ids": ids, "alphabets": alphabets})
        with pytest.warns(UserWarning, match="bad Omniglot cache"):
            og.load(small1_zip, cache_dir=cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # now valid again: no warning
        og.load(small1_zip, cache_dir=cache)


# --- splits and sampler ------------------------------------------------------------

def test_split_is_seeded_and_disjoint():
    train, test = og.split_characters(1623, 1200, seed=0)
    assert len(train) == 1200 and len(test) == 423
    assert not set(train) & set(test)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1623))
    again, _ = og.split_characters(1623, 1200, seed=0)
    other, _ = og.split_characters(1623, 1200, seed=1)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    with pytest.raises(ValueError, match="num_train"):
        og.split_characters(100, 100)


def test_split_images_keep_characters_apart(full_data):
    config = og.Config()
    train_images, test_images = og.split_images(full_data, config)
    assert train_images.shape[0] == 1200 and test_images.shape[0] == 423
    train_idx, test_idx = og.split_characters(1623, 1200, 0)
    np.testing.assert_array_equal(np.asarray(train_images), full_data.images[train_idx])
    np.testing.assert_array_equal(np.asarray(test_images), full_data.images[test_idx])


def test_sampler_properties(full_data):
    images = jnp.asarray(full_data.images[:300])
    ways, shots, queries, tasks_n = 5, 2, 3, 400
    tasks = jax.jit(lambda k: og.sample_tasks(k, images, tasks_n, ways, shots, queries))(
        jax.random.key(3))
    assert tasks.support_x.shape == (tasks_n, ways * shots, 28, 28, 1)
    assert tasks.query_x.shape == (tasks_n, ways * queries, 28, 28, 1)
    chars = np.asarray(tasks.characters)
    # N distinct classes per task
    assert all(len(set(row)) == ways for row in chars)
    # support and query drawings disjoint (within each class)
    drawers = np.asarray(tasks.drawers)
    assert all(len(set(d)) == shots + queries for d in drawers.reshape(-1, shots + queries))
    # labels: class-major 0..N-1, and the label -> character map is a fresh permutation
    np.testing.assert_array_equal(tasks.support_y[0], np.repeat(np.arange(ways), shots))
    np.testing.assert_array_equal(tasks.query_y[0], np.repeat(np.arange(ways), queries))
    first_smaller = np.mean(chars[:, 0] < chars[:, 1])
    assert 0.4 < first_smaller < 0.6
    assert set(np.unique(tasks.rotations)) == {0, 1, 2, 3}
    # the images are the named drawings, turned by the named quarter-turns
    for t in range(0, tasks_n, 37):
        for n in range(ways):
            for j in range(shots + queries):
                expect = np.rot90(full_data.images[chars[t, n], drawers[t, n, j]],
                                  int(tasks.rotations[t, n]))
                got = (tasks.support_x[t, n * shots + j] if j < shots
                       else tasks.query_x[t, n * queries + j - shots])
                np.testing.assert_array_equal(np.asarray(got)[..., 0], expect)


def test_sampler_rejects_bad_shapes(full_data):
    images = jnp.asarray(full_data.images[:10])
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="ways"):
        og.sample_tasks(key, images, 4, 11, 1, 1)
    with pytest.raises(ValueError, match="shots \\+ queries"):
        og.sample_tasks(key, images, 4, 5, 5, 16)
    with pytest.raises(ValueError, match="num_tasks"):
        og.sample_tasks(key, images, 0, 5, 1, 1)
    with pytest.raises(ValueError, match="eval_queries"):
        og.Config(eval_queries=7, queries=2).validate()


def test_query_groups_hold_one_batch_per_training_shape():
    ways, q, g = 3, 4, 2
    query_y = jnp.repeat(jnp.arange(ways), q)
    query_x = jnp.arange(ways * q, dtype=jnp.float32).reshape(ways * q, 1, 1, 1)
    gx, gy = og.query_groups(query_x, query_y, ways, g)
    assert gx.shape == (q // g, ways * g, 1, 1, 1)
    for group in np.asarray(gy):
        np.testing.assert_array_equal(group, np.repeat(np.arange(ways), g))
    assert sorted(np.asarray(gx).ravel().tolist()) == list(range(ways * q))


# --- model -----------------------------------------------------------------------

@pytest.mark.parametrize("size", [28, 14, 7, 4])
def test_im2col_matches_native_conv(size):
    kx, kw = jax.random.split(jax.random.key(size))
    x = jax.random.normal(kx, (3, size, size, 5))
    w = jax.random.normal(kw, (3, 3, 5, 8))
    np.testing.assert_allclose(conv2d_im2col(x, w), conv2d_native(x, w), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv2d_im2col(x, w, stride=1), conv2d_native(x, w, stride=1),
                               rtol=1e-4, atol=1e-4)


def test_conv_net_formulations_agree_under_vmap():
    keys = jax.random.split(jax.random.key(0), 4)
    params = jax.vmap(lambda k: conv_init(k, 5))(keys)          # per-task weights
    x = jax.random.uniform(jax.random.key(1), (4, 10, 28, 28, 1))
    a = jax.jit(jax.vmap(lambda p, xi: conv_apply(p, xi, conv2d_im2col)))(params, x)
    b = jax.jit(jax.vmap(lambda p, xi: conv_apply(p, xi, conv2d_native)))(params, x)
    assert a.shape == (4, 10, 5)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="filters"):
        conv_init(keys[0], 5, filters=0)


def test_batch_norm_normalises_each_channel_over_the_batch_and_positions():
    """BatchNorm for conv layers (Ioffe & Szegedy 2015, Section 3.2): statistics per
    channel over the mini-batch and every location, then each channel's scale and offset.
    Images of different brightness keep their differences (no per-image statistics)."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(6, 5, 4, 3)) * [1.0, 4.0, 0.2] + [0.0, 3.0, -1.0]
         + np.arange(6)[:, None, None, None])
    scale, offset = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 3.0])
    y = np.asarray(batch_norm(jnp.asarray(x, jnp.float32), jnp.asarray(scale, jnp.float32),
                              jnp.asarray(offset, jnp.float32)), np.float64)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), offset, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), scale, rtol=1e-3)
    assert np.all(np.diff(y.mean(axis=(1, 2))[:, 0]) > 0.2)   # brighter images stay brighter
    # each channel alone: shifting or scaling channel 1 of the input changes nothing
    shifted = x * [1.0, 7.0, 1.0] + [0.0, -5.0, 0.0]
    np.testing.assert_allclose(batch_norm(jnp.asarray(shifted, jnp.float32), scale, offset),
                               y, atol=1e-4)
    # the small-variance guard: a constant channel maps to its offset, not to NaN
    flat = batch_norm(jnp.ones((2, 3, 3, 1)), jnp.ones(1), jnp.full(1, 0.25))
    np.testing.assert_allclose(flat, 0.25)


def test_conv_net_predictions_depend_on_the_batch_symmetrically():
    params = conv_init(jax.random.key(0), 5)
    x = jax.random.uniform(jax.random.key(1), (10, 28, 28, 1))
    apply = jax.jit(conv_apply)
    alone = apply(params, x[:5])
    together = apply(params, x)
    assert not np.allclose(alone, together[:5], atol=1e-4)   # transductive...
    order = np.random.default_rng(0).permutation(10)        # ...but blind to the order
    np.testing.assert_allclose(apply(params, x[order]), together[order], rtol=1e-4,
                               atol=1e-5)


@pytest.mark.slow   # ~100 s of CPU (float64 second order through the conv net)
def test_conv_maml_meta_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        key = jax.random.key(0)
        params = jax.tree.map(lambda a: a.astype(jnp.float64),
                              conv_init(key, 3, filters=4, blocks=2))
        images = jax.random.uniform(jax.random.key(1), (6, 20, 8, 8), dtype=jnp.float64)
        tasks = og.sample_tasks(jax.random.key(2), images, 2, 3, 1, 2)
        _, loss_fn = og.classifier(conv2d_im2col)

        @partial(jax.jit, static_argnums=1)
        def objective(p, first_order=False):
            return maml_objective(p, loss_fn, tasks.support, tasks.query, 0.4, 2,
                                  first_order=first_order)

        grad = jax.grad(objective)(params)
        grad_fo = jax.grad(lambda p: objective(p, True))(params)
        direction = jax.tree.map(
            lambda a, k: jax.random.normal(k, a.shape, jnp.float64), params,
            jax.tree.unflatten(jax.tree.structure(params),
                               list(jax.random.split(key, len(jax.tree.leaves(params))))))
        eps = 1e-5
        shifted = lambda s: objective(jax.tree.map(lambda p, d: p + s * d, params, direction))
        numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
        dot = lambda g: sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g),
                                                            jax.tree.leaves(direction)))
        analytic, first_order = float(dot(grad)), float(dot(grad_fo))
        assert abs(analytic - numeric) < 1e-6 * max(1.0, abs(numeric))
        # the second-order term matters here, so the check above has teeth
        assert abs(first_order - numeric) > 1e-3 * abs(numeric)


# --- training --------------------------------------------------------------------

@pytest.mark.slow
def test_short_cli_training_beats_chance(small1_zip, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMAML_CACHE", str(cache_dir))
    out = tmp_path / "run"
    code = og.main(["--ways", "5", "--shots", "1", "--meta-steps", "200", "--data",
                    str(small1_zip), "--out", str(out), "--train-characters", "100",
                    "--filters", "16", "--eval-tasks", "200", "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    acc = metrics["test_accuracy"]
    assert metrics["config"]["ways"] == 5 and metrics["train_seconds"] > 0
    # chance is 20%; 36 unseen characters, 200 tasks x 15 queries per class
    assert acc["mean"] - acc["ci95"] > 0.45, acc
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert (out / "checkpoint.npz").exists()


def test_resume_is_exact(small1, tmp_path):
    config = og.paper_config(5, 1, meta_steps=6, meta_batch=4, filters=4, blocks=2,
                             first_order=True,  # compiles fast; resuming is order-blind
                             train_characters=100, eval_tasks=10, steps_per_call=2,
                             checkpoint_seconds=0.0)
    straight, hist = og.train(config, small1, tmp_path / "a", progress=False)
    # stopped by the time limit after its first chunk, then resumed to the end
    _, hist_stopped = og.train(dataclasses.replace(config, max_train_seconds=1e-9), small1,
                               tmp_path / "b", progress=False)
    assert hist_stopped["steps"] == 2 and hist_stopped["evals"][-1]["step"] == 2
    # resumed with its budget already spent: straight to the meta-test, not one step more
    _, hist_again = og.train(dataclasses.replace(config, max_train_seconds=1e-9), small1,
                             tmp_path / "b", progress=False)
    assert hist_again["steps"] == 2 and len(hist_again["losses"]) == 2
    resumed, hist_b = og.train(config, small1, tmp_path / "b", progress=False)
    for x, y in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(x, y)
    assert hist["losses"] == hist_b["losses"] and len(hist["losses"]) == 6
    with pytest.raises(ValueError, match="another config.*inner_lr"):
        og.train(dataclasses.replace(config, inner_lr=0.1), small1, tmp_path / "b",
                 progress=False)


def test_a_checkpoint_from_before_the_family_resumes_as_maml(small1, tmp_path):
    from minimaml.omniglot.checkpoint import load_checkpoint, save_checkpoint
    config = og.paper_config(5, 1, meta_steps=4, meta_batch=2, filters=4, blocks=2,
                             first_order=True, train_characters=100, eval_tasks=4,
                             steps_per_call=2, checkpoint_seconds=0.0)
    og.train(dataclasses.replace(config, max_train_seconds=1e-9), small1, tmp_path,
             progress=False)
    path = tmp_path / "checkpoint.npz"
    from minimaml.train import default_opt_state
    params = og.init_params(config)
    step, params, opt_state, state = load_checkpoint(path, params, default_opt_state(params))
    for field in ("algorithm", "algorithm_options"):      # what older versions wrote
        del state["config"][field]
    save_checkpoint(path, step, params, opt_state, state)
    with pytest.raises(ValueError, match="another config.*algorithm 'maml' there, 'anil'"):
        og.train(dataclasses.replace(config, algorithm="anil"), small1, tmp_path,
                 progress=False)
    _, history = og.train(config, small1, tmp_path, progress=False)
    assert history["steps"] == 4 and len(history["losses"]) == 4


def test_cli_rejects_bad_input(capsys, tmp_path):
    assert og.main(["--ways", "1", "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "ways must be an integer >= 2" in capsys.readouterr().err
    assert og.main(["--inner-lr", "-1", "--data", str(tmp_path)]) == 2
    assert "--inner-lr" in capsys.readouterr().err


def test_evaluating_another_checkpoint_does_not_recompile(small1, count_compilations):
    config = og.paper_config(5, 1, filters=4, blocks=2, train_characters=100, eval_tasks=10)
    _, test_images = og.split_images(small1, config)
    og.evaluate(og.init_params(config), test_images, config)
    other = og.init_params(dataclasses.replace(config, seed=1))
    with count_compilations() as events:
        og.evaluate(other, test_images, config)
    assert events == []


def test_no_data_and_no_network_is_one_line_naming_address_and_variable(tmp_path, monkeypatch):
    import pooch
    import requests

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Max retries exceeded (no network)")
    monkeypatch.setattr(pooch, "retrieve", offline)
    monkeypatch.delenv(og.DATA_DIR_VARIABLE, raising=False)
    with pytest.raises(og.DataUnavailable) as caught:
        og.load(None, cache_dir=tmp_path, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert og.BASE_URL + "images_background.zip" in message
    assert og.DATA_DIR_VARIABLE in message and "images_evaluation.zip" in message
    assert og.main(["--out", str(tmp_path / "run"), "--no-progress"]) == 2


def test_default_config_is_the_papers():
    """Section 5.2 and Appendix A.1: 5-way, one step at α = 0.4 (three at test), meta-batch
    32, Adam 1e-3, 60,000 steps, 4 blocks of 64 filters, 1,200 training characters; 20-way:
    five steps at α = 0.1 (five at test), meta-batch 16."""
    config = og.Config()
    assert (config.ways, config.shots, config.inner_steps, config.inner_lr,
            config.eval_inner_steps, config.meta_batch, config.meta_lr, config.meta_steps,
            config.filters, config.blocks, config.train_characters) == (
        5, 1, 1, 0.4, 3, 32, 1e-3, 60_000, 64, 4, 1200)
    twenty = og.paper_config(20, 5)
    assert (twenty.ways, twenty.shots, twenty.inner_steps, twenty.inner_lr,
            twenty.eval_inner_steps, twenty.meta_batch) == (20, 5, 5, 0.1, 5, 16)


def test_a_named_cache_needs_no_pooch(monkeypatch, tmp_path):
    """With $MINIMAML_CACHE set, finding the cache imports nothing from the omniglot extra
    (the GPU machine has no pooch: local data and a named cache must be enough)."""
    import sys
    from minimaml.omniglot import data
    monkeypatch.setenv("MINIMAML_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "pooch", None)     # any `import pooch` now fails
    assert data.default_cache_dir() == tmp_path


def test_cli_algorithm_reaches_the_config_and_checkpoints_keep_runs_apart(small1, tmp_path):
    config, _ = og.parse_args(["--algorithm", "anil", "--data", str(tmp_path)])
    assert config.algorithm == "anil" and config.inner_steps == 1
    config, _ = og.parse_args(["--algorithm", "imaml", "--algorithm-option", "reg=2"])
    assert config.inner_steps == 10 and config.options() == {"inner_steps": 10, "reg": 2}
    small = og.paper_config(5, 1, meta_steps=2, meta_batch=2, filters=4, blocks=2,
                            train_characters=100, eval_tasks=5, steps_per_call=2,
                            algorithm="metasgd")
    params, history = og.train(small, small1, tmp_path / "run", progress=False)
    assert history["learned"].learned_lr and history["ms_per_step"] > 0
    assert len(history["evals"]) == 1
    with pytest.raises(ValueError, match="not a usable checkpoint for this config"):
        og.train(dataclasses.replace(small, algorithm="maml"), small1, tmp_path / "run",
                 progress=False)


def test_cli_rejects_bad_algorithm(capsys, tmp_path):
    assert og.main(["--algorithm", "imaml", "--algorithm-option", "regg=1",
                    "--data", str(tmp_path)]) == 2
    assert "imaml has no option 'regg'" in capsys.readouterr().err
    assert og.main(["--algorithm", "maml2", "--data", str(tmp_path)]) == 2
    assert ("error: --algorithm must be one of maml, fomaml, metasgd, anil, mamlpp, reptile, "
            "imaml; got 'maml2'") in capsys.readouterr().err
