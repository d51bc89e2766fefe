"""Evaluating a θ without training, the shipped θ, the baselines, the paper's four settings
and the GPU script on the CPU.

Bad input to ``python -m minimaml.omniglot evaluate`` is one line naming the file and
what was expected, exit code 2, never a traceback, never unpickling. The baselines
beat chance and MAML's θ beats them after one step, on the real data at a small size.
"""
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minimaml import npz
from minimaml import omniglot as og
from minimaml.nets import conv_apply, conv_init, mlp_init
from fakes import data_or_skip
from minimaml.omniglot import baselines as bl
from minimaml.omniglot.evaluation import evaluate_main, evaluate_params
from minimaml.omniglot.shipped import load_params, shipped_params, shipped_path

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("omniglot_cache")


@pytest.fixture(scope="module")
def full_data(cache_dir):
    return data_or_skip(lambda: og.load(None, cache_dir=cache_dir, progress=False))


@pytest.fixture
def use_cache(cache_dir, monkeypatch):
    """The CLI reads the data through this module's cache."""
    monkeypatch.setenv("MINIMAML_CACHE", str(cache_dir))


def tiny_params(ways=5, filters=4, seed=0):
    return conv_init(jax.random.key(seed), ways, filters=filters)


# --- loading params: every bad input is one line naming the file -----------------------

def bad_files(tmp_path):
    """(name, path, words the message must hold) for each kind of bad params file."""
    text = tmp_path / "notes.npz"
    text.write_text("not a zip at all")
    sinusoid = tmp_path / "sinusoid.npz"
    npz.save(sinusoid, mlp_init(jax.random.key(0)))
    wrong_shape = tiny_params(filters=4)
    wrong_shape[2]["w"] = jnp.zeros((3, 3, 5, 4))
    npz.save(tmp_path / "shape.npz", wrong_shape)
    npz.save(tmp_path / "twenty_way.npz", tiny_params(ways=20))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"0/w": np.array([{"a": 1}], dtype=object)})
    nan = tiny_params()
    nan[0]["scale"] = nan[0]["scale"].at[0].set(jnp.nan)
    npz.save(tmp_path / "nan.npz", nan)
    return [("missing", tmp_path / "nowhere.npz", ["no such file"]),
            ("not an npz", text, ["not an .npz"]),
            ("other net", sinusoid, ["no conv-net parameters", "expected the conv net"]),
            ("wrong shape", tmp_path / "shape.npz", ["2/w", "(3, 3, 5, 4)", "expected (3, 3, 4, 4)"]),
            ("wrong ways", tmp_path / "twenty_way.npz", ["20 outputs", "5-way tasks need"]),
            ("pickle", pickled, ["plain arrays"]),
            ("nan", tmp_path / "nan.npz", ["non-finite"])]


def test_load_params_round_trip_and_reads_checkpoints(tmp_path):
    params = tiny_params(filters=6)
    npz.save(tmp_path / "p.npz", params)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(load_params(tmp_path / "p.npz", 5))):
        np.testing.assert_array_equal(a, b)
    # a training checkpoint: params, optimizer state and extras in one npz
    npz.save(tmp_path / "checkpoint.npz", {"params": params, "opt_state": {"mu": params}},
             step=np.array(7), state=np.array("{}"))
    back = load_params(tmp_path / "checkpoint.npz", 5)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back)):
        np.testing.assert_array_equal(a, b)


def test_load_params_rejects_each_bad_file_in_one_line(tmp_path):
    for name, path, words in bad_files(tmp_path):
        with pytest.raises(ValueError) as caught:
            load_params(path, 5)
        message = str(caught.value)
        assert str(path) in message and "\n" not in message, name
        for word in words:
            assert word in message, (name, message)


def test_evaluate_cli_rejects_each_bad_file_before_reading_data(tmp_path, capsys):
    for name, path, words in bad_files(tmp_path):
        code = evaluate_main(["--params", str(path), "--data", str(tmp_path / "no_data"),
                              "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2, name
        assert err.startswith("error: ") and err.count("\n") == 1, (name, err)
        assert str(path) in err and "Traceback" not in err, (name, err)
        assert err.startswith(f"error: --params: {path}"), (name, err)
        for word in words:
            assert word in err, (name, err)
    assert not (tmp_path / "out").exists()       # nothing written on bad input


def test_evaluate_cli_rejects_bad_sizes_and_settings_without_a_shipped_theta(tmp_path, capsys):
    (tmp_path / "a_file").write_text("in the way")
    npz.save(tmp_path / "five.npz", tiny_params(ways=5))
    for argv, words in ((["--ways", "1"], ["--ways must be an integer >= 2; got 1"]),
                        (["--eval-tasks", "0"], ["--eval-tasks must be an integer >= 1"]),
                        (["--eval-inner-steps", "-1"], ["--eval-inner-steps must be"]),
                        (["--eval-tasks", "many"], ["--eval-tasks", "invalid int value"]),
                        (["--ways", "20"], ["no shipped parameters for 20-way 1-shot",
                                            "--params"]),
                        (["--ways", "20", "--params", str(tmp_path / "five.npz")],
                         ["--params", "five.npz", "5 outputs", "20-way tasks need"]),
                        (["--out", str(tmp_path / "a_file")], ["--out", "a_file",
                                                               "in the way"])):
        out = [] if "--out" in argv else ["--out", str(tmp_path / "out")]
        assert evaluate_main([*argv, *out]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and all(w in err for w in words), err
        assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_bad_file_through_the_real_command_line(tmp_path):
    (tmp_path / "bad.npz").write_text("hello")
    result = subprocess.run([sys.executable, "-m", "minimaml.omniglot", "evaluate",
                             "--params", str(tmp_path / "bad.npz"), "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "bad.npz" in result.stderr
    assert "not an .npz" in result.stderr


# --- the shipped θ -----------------------------------------------------------------

def test_shipped_theta_is_small_plain_and_five_way():
    path = shipped_path(5, 1)
    assert path.exists() and path.stat().st_size <= 1_000_000
    params = shipped_params()
    assert np.shape(params[-1]["w"]) == (64, 5) and len(params) == 5
    with np.load(path, allow_pickle=False) as data:   # plain arrays only
        assert int(data["_meta_steps"]) > 0


def test_shipped_transfer_net_is_small_plain_and_1200_way():
    path = og.shipped_path(5, 1).parent / "omniglot_transfer_1200way.npz"
    assert path.stat().st_size <= 1_000_000
    params, made = og.shipped_transfer()
    assert np.shape(params[-1]["w"]) == (64, 1200) and len(params) == 5
    losses = made["losses"]
    assert len(losses) == int(made["steps"]) > 0
    assert losses[-50:].mean() < 0.5 * losses[:50].mean()   # it learnt the 1,200 classes
    assert float(made["wall_seconds"]) > 0 and float(made["cpu_seconds"]) > 0


def test_four_settings_table_is_the_papers_four_with_its_numbers():
    import importlib.resources
    table = json.loads((importlib.resources.files("minimaml") / "data" /
                        "omniglot_settings.json").read_text())
    rows = {(r["ways"], r["shots"]): r for r in table["settings"]}
    assert sorted(rows) == [(5, 1), (5, 5), (20, 1), (20, 5)]
    assert [rows[k]["paper"][:4] for k in [(5, 1), (5, 5), (20, 1), (20, 5)]] == [
        "98.7", "99.9", "95.8", "98.9"]                  # Finn et al. (2017), Table 1
    for row in rows.values():
        assert row["speed"] is not None            # every setting's s/step was measured
        if row["run"] is not None:
            assert 0 < row["run"]["accuracy"] <= 1 and row["run"]["steps"] > 0
    assert rows[(5, 1)]["run"]["accuracy"] > 0.98   # the shipped θ's run


# --- evaluate: the function and the command agree ------------------------------------

@pytest.mark.slow
def test_evaluate_function_and_cli_agree(full_data, use_cache, tmp_path):
    params = tiny_params(filters=4)
    npz.save(tmp_path / "theta.npz", params)
    metrics = evaluate_params(params, full_data, 5, 1, eval_tasks=12, eval_inner_steps=2)
    assert metrics["test_accuracy"]["tasks"] == 12 and metrics["test_accuracy"]["steps"] == 2
    assert len(metrics["accuracy_by_step"]) == 3
    code = evaluate_main(["--params", str(tmp_path / "theta.npz"), "--out", str(tmp_path / "o"),
                          "--eval-tasks", "12", "--eval-inner-steps", "2", "--no-progress"])
    assert code == 0
    written = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert written["test_accuracy"] == metrics["test_accuracy"]
    assert written["config"]["ways"] == 5 and written["config"]["inner_lr"] == 0.4
    assert written["config"]["filters"] == 4
    # the same tasks as the training run's meta-test with that seed
    config = og.paper_config(5, 1, eval_tasks=12, eval_inner_steps=2, filters=4)
    _, test_images = og.split_images(full_data, config)
    direct = og.evaluate(params, test_images, config)
    assert np.isclose(direct[:, -1].mean(), metrics["test_accuracy"]["mean"])


@pytest.mark.slow
def test_evaluate_defaults_to_the_shipped_theta(full_data, use_cache, tmp_path, capsys):
    assert evaluate_main(["--out", str(tmp_path), "--eval-tasks", "40", "--no-progress"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["params"] == str(shipped_path(5, 1)) and "test accuracy" in out
    by_step = metrics["accuracy_by_step"]
    assert 0.1 < by_step[0] < 0.3                  # before adapting: chance (1/5)
    assert metrics["test_accuracy"]["mean"] > 0.9   # after 3 steps: the paper's regime


# --- baselines -----------------------------------------------------------------------

def test_class_batches_label_each_image_with_its_character():
    images = jax.random.uniform(jax.random.key(0), (7, 4, 6, 6))
    (), (x, y) = bl.ClassBatches(images, groups=3, group_size=5)(jax.random.key(1))
    assert x.shape == (3, 5, 6, 6, 1) and y.shape == (3, 5)
    for image, label in zip(x.reshape(-1, 6, 6), y.ravel()):
        turns = [np.rot90(images[label, d], k) for d in range(4) for k in range(4)]
        assert any(np.array_equal(image, t) for t in turns)


def test_features_are_what_the_head_reads_and_the_new_head_is_blank():
    params = tiny_params(filters=6)
    x = jax.random.uniform(jax.random.key(2), (5, 28, 28, 1))
    features = bl.conv_features(params, x)
    np.testing.assert_allclose(features @ params[-1]["w"] + params[-1]["b"],
                               conv_apply(params, x), rtol=1e-5, atol=1e-6)
    blank = bl.new_head(params, 3)
    assert np.shape(blank[-1]["w"]) == (6, 3) and not np.any(conv_apply(blank, x))


@pytest.mark.slow
def test_finetune_accuracies_match_task_accuracies_at_the_listed_steps(full_data):
    config = og.paper_config(5, 1, eval_tasks=6, filters=4)
    _, test_images = og.split_images(full_data, config)
    tasks = og.sample_tasks(jax.random.key(3), test_images, 6, 5, 1, 3)
    params = og.init_params(config)
    curves = og.task_accuracies(params, tasks, 5, 0.4, 3)
    np.testing.assert_allclose(bl.finetune_accuracies(params, tasks, 5, 0.4, (0, 1, 3)),
                               curves[:, [0, 1, 3]], atol=1e-6)
    with pytest.raises(ValueError, match="increasing"):
        bl.finetune_accuracies(params, tasks, 5, 0.4, (3, 1))


@pytest.mark.slow
def test_baselines_beat_chance_and_maml_beats_them_after_one_step(full_data):
    ways, tasks_n = 5, 40
    config = og.paper_config(ways, 1, eval_tasks=tasks_n)
    train_images, test_images = og.split_images(full_data, config)
    tasks = og.sample_tasks(jax.random.fold_in(jax.random.key(0), 10_000), test_images,
                            tasks_n, ways, 1, 15)
    transfer, losses = bl.pretrain_classifier(train_images, jax.random.key(0), steps=300,
                                              filters=16, steps_per_call=100)
    assert np.shape(transfer[-1]["w"]) == (16, 1200)
    assert losses[-50:].mean() < losses[:50].mean()          # it learns the 1,200 classes
    scratch = conv_init(jax.random.key(1), ways, filters=16)
    steps = (0, 1, 20)
    results = {
        "transfer": bl.finetune_accuracies(bl.new_head(transfer, ways), tasks, ways, 0.4, steps),
        "scratch": bl.finetune_accuracies(scratch, tasks, ways, 0.4, steps),
        "ncm transfer": bl.nearest_class_mean_accuracies(transfer, tasks, ways)[:, None],
    }
    maml = shipped_params()
    results["ncm maml"] = bl.nearest_class_mean_accuracies(maml, tasks, ways)[:, None]
    maml_one_step = bl.finetune_accuracies(maml, tasks, ways, 0.4, (1,))[:, 0].mean()
    chance = 1 / ways
    for name, acc in results.items():
        best = acc[:, -1]
        assert best.mean() - 1.96 * best.std() / np.sqrt(tasks_n) > chance, (name, best.mean())
        assert maml_one_step > acc.mean(axis=0).max(), name
    # a zero head's first step moves the head only: its accuracy does not depend on α
    np.testing.assert_array_equal(
        bl.finetune_accuracies(bl.new_head(transfer, ways), tasks, ways, 0.05, (1,))[:, 0],
        results["transfer"][:, 1])


# --- the paper's four settings, each from the CLI ------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("ways, shots", [(5, 1), (5, 5), (20, 1), (20, 5)])
def test_each_paper_setting_runs_from_the_cli(ways, shots, full_data, use_cache, tmp_path):
    out = tmp_path / "run"
    code = og.main(["--ways", str(ways), "--shots", str(shots), "--meta-steps", "2",
                    "--filters", "4", "--eval-tasks", "4", "--steps-per-call", "1",
                    "--out", str(out), "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    c = metrics["config"]
    paper = {5: (32, 1, 0.4, 3), 20: (16, 5, 0.1, 5)}[ways]
    assert (c["meta_batch"], c["inner_steps"], c["inner_lr"], c["eval_inner_steps"]) == paper
    assert (c["ways"], c["shots"], c["first_order"]) == (ways, shots, False)
    assert metrics["meta_steps"] == 2 and 0 <= metrics["test_accuracy"]["mean"] <= 1


# --- the GPU script, on the CPU at a tiny size ----------------------------------------

@pytest.mark.slow
def test_gpu_script_runs_on_the_cpu_at_a_tiny_size(full_data, tmp_path):
    data_dir = og.data_dir()
    if data_dir is None:
        pytest.skip(f"${og.DATA_DIR_VARIABLE} is not set (the GPU script reads a local copy)")
    result = subprocess.run(
        [sys.executable, "benchmarks/omniglot_gpu.py", "--data", str(data_dir),
         "--out", str(tmp_path), "--deadline", "40", "--timing-steps", "2",
         "--filters", "4", "--eval-tasks", "5"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "omniglot_gpu.json").read_text())
    assert report["backend"] == "cpu" and report["run"]["meta_steps"] > 0
    assert 0 <= report["run"]["test_accuracy"]["mean"] <= 1
    text = (tmp_path / "omniglot_gpu.md").read_text()
    # a CPU dry run never reads as a GPU result, and cannot be recorded as one
    assert "not a GPU result" in text and "## Omniglot MAML on a GPU" not in text
    recorded = subprocess.run([sys.executable, "benchmarks/omniglot_gpu.py", "--record",
                               str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert recorded.returncode == 2 and "not a GPU" in recorded.stderr


def test_meta_test_memory_does_not_grow_with_fine_tuning_steps():
    """iMAML's 16 fine-tuning steps once needed ~16 GB: the chunk of tasks fine-tuned at a
    time shrinks with the steps, so the meta-test's estimate stays near the 3-step one."""
    from minimaml.omniglot.sizes import estimate_memory, eval_chunk
    base = og.Config(ways=5, shots=1)
    assert eval_chunk(base) == 50
    estimates = {}
    for steps in (3, 10, 16, 40):
        config = og.Config(ways=5, shots=1, eval_inner_steps=steps)
        estimates[steps] = estimate_memory(config, 1623)["the meta-test"][0]
        assert eval_chunk(config) == 50 if steps == 3 else eval_chunk(config) < 50
    assert max(estimates.values()) < 1.15 * estimates[3], estimates
    assert eval_chunk(og.Config(ways=20, shots=1)) == 12
