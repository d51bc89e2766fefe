"""The sinusoid task distribution and the experiment CLI (minimaml/sinusoid.py)."""
import json
import math
import subprocess
import sys

import jax
import numpy as np
import pytest

from minimaml import sinusoid


def test_sampler_shapes_ranges_and_formula():
    tasks = sinusoid.sample_tasks(jax.random.key(0), 2000, 7, 3)
    assert tasks.support_x.shape == (2000, 7, 1) and tasks.query_y.shape == (2000, 3, 1)
    amp, phase = np.asarray(tasks.amplitude), np.asarray(tasks.phase)
    assert 0.1 <= amp.min() and amp.max() <= 5.0
    assert 0.0 <= phase.min() and phase.max() <= math.pi
    # Uniform, so the extremes come close to the bounds and the mean is central.
    assert amp.min() < 0.15 and amp.max() > 4.95 and abs(amp.mean() - 2.55) < 0.1
    assert phase.min() < 0.01 and phase.max() > math.pi - 0.01
    for x in (tasks.support_x, tasks.query_x):
        x = np.asarray(x)
        assert -5.0 <= x.min() and x.max() <= 5.0 and x.min() < -4.95 and x.max() > 4.95
    expected = amp[:, None, None] * np.sin(np.asarray(tasks.support_x) - phase[:, None, None])
    np.testing.assert_allclose(tasks.support_y, expected, rtol=1e-5, atol=1e-5)
    expected = amp[:, None, None] * np.sin(np.asarray(tasks.query_x) - phase[:, None, None])
    np.testing.assert_allclose(tasks.query_y, expected, rtol=1e-5, atol=1e-5)


def test_sampler_is_a_function_of_the_key():
    a = sinusoid.sample_tasks(jax.random.key(3), 4, 5, 5)
    b = sinusoid.sample_tasks(jax.random.key(3), 4, 5, 5)
    c = sinusoid.sample_tasks(jax.random.key(4), 4, 5, 5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a.support_x, c.support_x)


@pytest.mark.parametrize("args, name", [
    ((0, 5, 5), "num_tasks"), ((4, 0, 5), r"support_size \(K\)"), ((4, 5, -1), r"query_size \(Q\)")])
def test_sampler_rejects_bad_sizes(args, name):
    with pytest.raises(ValueError, match=name + r" must be an integer >= 1"):
        sinusoid.sample_tasks(jax.random.key(0), *args)


@pytest.mark.parametrize("field, value, message", [
    ("support_size", 0, "support_size must be an integer >= 1"),
    ("query_size", 0, "query_size must be an integer >= 1"),
    ("meta_batch", 0, "meta_batch must be an integer >= 1"),
    ("inner_steps", -1, "inner_steps must be an integer >= 0"),
    ("inner_lr", 0.0, "inner_lr must be a finite number > 0"),
    ("inner_lr", float("nan"), "inner_lr must be a finite number > 0"),
    ("meta_lr", -1.0, "meta_lr must be a finite number > 0"),
])
def test_config_validation(field, value, message):
    with pytest.raises(ValueError, match=message):
        sinusoid.Config(**{field: value})


def test_params_round_trip(tmp_path):
    params = sinusoid.init_params(jax.random.key(0))
    sinusoid.save_params(tmp_path / "p.npz", params)
    loaded = sinusoid.load_params(tmp_path / "p.npz")
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(a, b)


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "minimaml.sinusoid", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.slow
def test_short_cli_run_beats_pretrained_baseline(tmp_path):
    out = tmp_path / "run"
    result = run_cli("--meta-steps", "3000", "--eval-tasks", "200", "--out", str(out),
                     "--no-progress")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "sinusoid.png").stat().st_size > 10_000
    assert metrics["config"]["meta_steps"] == 3000 and metrics["train_seconds"] > 0
    for model in ("maml", "pretrained"):
        for k in ("5", "10", "20"):
            assert len(metrics[model][k]["mse"]) == 11 and len(metrics[model][k]["ci95"]) == 11
    maml, pre = metrics["maml"]["10"], metrics["pretrained"]["10"]
    # MAML's one adaptation step helps a lot, and beats the pretrained model's step.
    assert maml["mse"][1] + 2 * maml["ci95"][1] < 0.6 * maml["mse"][0]
    assert maml["mse"][1] + maml["ci95"][1] < 0.6 * (pre["mse"][1] - pre["ci95"][1])


@pytest.mark.parametrize("args, message", [
    (["--support-size", "0"], "--support-size must be an integer >= 1"),
    (["--query-size", "-2"], "--query-size must be an integer >= 1"),
    (["--inner-steps", "-1"], "--inner-steps must be an integer >= 0"),
    (["--inner-lr", "nan"], "--inner-lr must be a finite number > 0"),
    (["--inner-lr", "0"], "--inner-lr must be a finite number > 0"),
    (["--meta-batch", "0"], "--meta-batch must be an integer >= 1"),
])
def test_cli_bad_input_is_one_line_error(args, message, tmp_path):
    result = run_cli(*args, "--meta-steps", "10", "--out", str(tmp_path))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], \
        result.stderr


def test_cli_divergence_names_the_step(tmp_path):
    result = run_cli("--meta-steps", "2000", "--inner-lr", "5", "--inner-steps", "5",
                     "--out", str(tmp_path), "--no-progress")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "diverged" in lines[0] and "at step" in lines[0]
    assert "smaller learning rate" in lines[0]


def test_diverging_fine_tuning_at_meta_test_is_reported():
    from minimaml.train import TrainingDiverged
    params = sinusoid.init_params(jax.random.key(0))
    config = sinusoid.Config(inner_lr=50.0, eval_tasks=20, eval_shots=(10,))
    with pytest.raises(TrainingDiverged,
                       match=r"meta-test \(K=10\) on \d+ of 20 tasks.*after step \d+.*inner_lr=50"):
        sinusoid.evaluate(params, config)


def test_meta_test_leaves_out_and_counts_a_rare_diverging_task(monkeypatch):
    params = sinusoid.init_params(jax.random.key(0))
    config = sinusoid.Config(eval_tasks=40, eval_shots=(5,), eval_steps=3)
    tasks = sinusoid.evaluation_tasks(config, 5)
    # Sabotage one evaluation task by making its support targets infinite.
    broken = tasks._replace(support_y=tasks.support_y.at[7].set(np.inf))
    monkeypatch.setattr(sinusoid.experiment, "evaluation_tasks", lambda config, shots: broken)
    result = sinusoid.evaluate(params, config)["5"]
    assert result["diverged_tasks"] == 1 and result["tasks"] == 40
    assert np.isfinite(result["mse"]).all()
    from minimaml.evaluate import finetune_curves, mean_ci95
    curves = finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, 0.01, 3)
    expected, _ = mean_ci95(np.delete(curves, 7, axis=0))
    np.testing.assert_allclose(result["mse"], expected, rtol=1e-6)


def test_default_config_is_the_papers():
    """Section 5.1 and Appendix of the paper: K = 10, meta-batch 25, one step at α = 0.01,
    Adam β = 1e-3, 70,000 meta-steps; meta-test on 600 tasks, 100 held-out points each."""
    config = sinusoid.Config()
    assert (config.support_size, config.meta_batch, config.inner_steps, config.inner_lr,
            config.meta_lr, config.meta_steps, config.hidden) == (10, 25, 1, 0.01, 1e-3,
                                                                  70_000, (40, 40))
    assert (config.eval_tasks, config.eval_query, config.eval_shots, config.eval_steps) == (
        600, 100, (5, 10, 20), 10)


def test_a_tiny_run_writes_what_it_reports(tmp_path):
    config = sinusoid.Config(meta_steps=20, meta_batch=4, eval_tasks=10, eval_shots=(5,),
                             eval_steps=2)
    maml_params, pre_params, metrics = sinusoid.run(config, tmp_path / "run", progress=False)
    out = tmp_path / "run"
    for name, params in (("maml_params.npz", maml_params), ("pretrained_params.npz", pre_params)):
        for a, b in zip(jax.tree.leaves(sinusoid.load_params(out / name)),
                        jax.tree.leaves(params)):
            np.testing.assert_array_equal(a, b)
    written = json.loads((out / "metrics.json").read_text())
    assert written["maml"] == metrics["maml"] and written["pretrained"] == metrics["pretrained"]
    assert metrics["train_seconds"] > 0 and metrics["pretrain_seconds"] > 0
    assert (out / "sinusoid.png").stat().st_size > 10_000
    assert len(metrics["maml"]["5"]["mse"]) == 3 and metrics["maml"]["5"]["tasks"] == 10
    # the table shows these numbers, one row per model, one column per step asked for
    table = sinusoid.format_table(metrics, "5", steps=(1, 2, 10)).splitlines()
    assert table[0] == "| model | 1 step | 2 steps |"           # step 10 was not evaluated
    for row, name in zip(table[2:], ("maml", "pretrained")):
        res = metrics[name]["5"]
        assert row == (f"| {name} (K=5) | {res['mse'][1]:.3f} ± {res['ci95'][1]:.3f} | "
                       f"{res['mse'][2]:.3f} ± {res['ci95'][2]:.3f} |")


def test_cli_algorithm_is_recorded_and_each_variant_is_meta_tested_its_way(tmp_path):
    out = tmp_path / "metasgd"
    result = run_cli("--algorithm", "metasgd", "--meta-steps", "300", "--eval-tasks", "50",
                     "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["algorithm"] == "metasgd" and metrics["ms_per_step"] > 0
    assert (out / "maml_inner_lr.npz").exists()          # Meta-SGD's learned rates
    assert "| metasgd (K=5)" in result.stdout
    defaults = sinusoid.parse_args(["--algorithm", "reptile"])[0]
    assert defaults.inner_steps == 5 and defaults.algorithm == "reptile"
    assert sinusoid.parse_args([])[0].algorithm == "maml"
    options = sinusoid.parse_args(["--algorithm", "imaml", "--algorithm-option", "reg=2.5"])[0]
    assert options.options() == {"inner_steps": 10, "reg": 2.5}


@pytest.mark.parametrize("args, message", [
    (["--algorithm", "imaml", "--algorithm-option", "regg=2"], "imaml has no option 'regg'"),
    (["--algorithm", "reptile", "--first-order"], "--first-order applies to maml, metasgd and anil"),
    (["--algorithm", "mamlpp", "--inner-steps", "0"], "--inner-steps must be an integer >= 1"),
])
def test_cli_bad_algorithm_settings_are_one_line_errors(args, message, tmp_path):
    test_cli_bad_input_is_one_line_error(args, message, tmp_path)


def test_cli_unknown_algorithm_names_the_flag(tmp_path):
    result = run_cli("--algorithm", "maml2", "--out", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("error: --algorithm must be one of maml, fomaml, metasgd, anil, mamlpp, reptile, "
            "imaml; got 'maml2'") in result.stderr


def test_learned_rates_that_blow_up_past_their_steps_end_the_curve_instead_of_raising():
    from minimaml.family import Learned
    from minimaml.train import TrainingDiverged
    params = sinusoid.init_params(jax.random.key(0))
    config = sinusoid.Config(eval_tasks=30, eval_shots=(10,), eval_steps=4)
    rates = jax.tree.map(lambda p: np.full(p.shape, 40.0, np.float32), params)
    result = sinusoid.evaluate(params, config, learned=Learned(params, rates, learned_lr=True))
    mse = result["10"]["mse"]
    last = result["10"]["diverged_after_step"]
    assert mse[0] is not None and all(m is None for m in mse[last + 1:]) and last < 4
    with pytest.raises(TrainingDiverged):     # given (not learned) rates still raise
        sinusoid.evaluate(params, sinusoid.Config(inner_lr=50.0, eval_tasks=20, eval_shots=(10,)))
