"""The command lines' --devices and --distributed (issue 15): two simulated CPU devices give
the one-device results, metrics.json records the devices, and bad values are one line
naming the flag before any work (the simple ones are in test_bad_input.py's tables).

The simulated devices must be chosen before JAX starts, so the runs are subprocesses.
Tolerances: the mean over tasks is summed in another order on two devices (an all-reduce
of two partial sums), so floats differ in the last bits — the meta-test MSEs and params
agree to 1e-5 relative (measured: ~1e-8), Omniglot's training losses to 1e-5 and its
test accuracies exactly (a few tiny tasks: no prediction is near a tie).
"""
import json
import os
import socket
import sys
import time

import jax
import numpy as np
import pytest

from minimaml import npz
from minimaml.omniglot import cli as og_cli
from minimaml.sinusoid import cli as sin_cli

from fakes import TINY_FLAGS, error_lines, finish, python, write_npz

CPU = {"JAX_PLATFORMS": "cpu"}
SINUSOID = ["--meta-steps", "20", "--meta-batch", "5", "--eval-tasks", "21", "--eval-steps",
            "2", "--no-progress"]       # 5 and 21 tasks: uneven over 2 devices


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def runs(module, argv, tmp_path, devices=(1, 2)):
    """``python -m module argv --out tmp_path/devicesN [--devices N]`` for each N, together;
    N > 1 on N simulated CPU devices. Returns {N: out folder}."""
    started = {}
    for count in devices:
        extra, env = [], dict(CPU)
        if count > 1:
            extra, env = ["--devices", str(count)], {**CPU, "JAX_NUM_CPU_DEVICES": str(count)}
        out = tmp_path / f"devices{count}"
        started[count] = (out, python("-m", module, *map(str, argv), "--out", str(out), *extra,
                                      env=env))
    for count, (out, process) in started.items():
        status, stdout, stderr = finish(process)
        assert status == 0, stderr[-3000:]
    return {count: out for count, (out, _) in started.items()}


@pytest.mark.slow
def test_sinusoid_cli_on_two_devices_gives_the_one_device_results(tmp_path):
    outs = runs("minimaml.sinusoid", SINUSOID, tmp_path)
    one, two = (json.loads((outs[n] / "metrics.json").read_text()) for n in (1, 2))
    assert one["devices"]["devices"] == 1 and two["devices"]["devices"] == 2
    assert two["devices"]["platform"] == "cpu" and two["devices"]["processes"] == 1
    assert one["config"] == two["config"]
    for model in ("maml", "pretrained"):
        for shots, result in one[model].items():
            np.testing.assert_allclose(two[model][shots]["mse"], result["mse"], rtol=1e-5)
    for name in ("maml_params.npz", "pretrained_params.npz"):
        first, second = (jax.tree.leaves(npz.load(outs[n] / name)[0]) for n in (1, 2))
        for x, y in zip(first, second):
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-7)
    start = jax.tree.leaves(npz.load(outs[1] / "pretrained_params.npz")[0])
    assert any(np.abs(x - y).max() > 1e-3 for x, y in
               zip(start, jax.tree.leaves(npz.load(outs[1] / "maml_params.npz")[0])))


@pytest.mark.slow
def test_omniglot_cli_on_two_devices_gives_the_one_device_results(tmp_path):
    data = write_npz(tmp_path / "fake.npz")
    argv = ["--data", data, "--meta-steps", "3", *TINY_FLAGS, "--meta-batch", "3",
            "--eval-tasks", "5"]
    outs = runs("minimaml.omniglot", argv, tmp_path)
    one, two = (json.loads((outs[n] / "metrics.json").read_text()) for n in (1, 2))
    assert one["devices"]["devices"] == 1 and two["devices"]["devices"] == 2
    assert two["test_accuracy"] == one["test_accuracy"]
    first, second = (npz.load(outs[n] / "checkpoint.npz") for n in (1, 2))
    losses = [json.loads(str(extra["state"]))["losses"] for _, extra in (first, second)]
    assert len(losses[0]) == 3
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    for x, y in zip(jax.tree.leaves(first[0]["params"]), jax.tree.leaves(second[0]["params"])):
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)


def test_more_devices_than_the_cpu_has_cores_and_distributed_alone_are_one_line(tmp_path):
    """In a fresh process (JAX not started yet), as a user meets them."""
    too_many = python("-m", "minimaml.sinusoid", "--out", str(tmp_path / "a"), "--devices",
                      str(cores() + 1), env=CPU)
    nowhere = python("-m", "minimaml.omniglot", "--out", str(tmp_path / "b"), "--distributed",
                     env={**CPU, "JAX_COORDINATOR_ADDRESS": "", "JAX_NUM_PROCESSES": "",
                          "JAX_PROCESS_ID": ""})
    status, _, stderr = finish(too_many, timeout=120)
    assert status == 2 and error_lines(stderr) == [
        f"error: --devices must be an integer in 1..{cores()} (this machine's {cores()} CPU "
        f"cores, one host device each); got {cores() + 1}"]
    status, _, stderr = finish(nowhere, timeout=120)
    assert status == 2 and error_lines(stderr) == [
        "error: --distributed: --coordinator, --processes, --process-id not given: give "
        "them, or set $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, $JAX_PROCESS_ID"]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_process_whose_others_never_join_stops_in_bounded_time_with_one_line(tmp_path):
    """Process 0 of 2 alone: its coordinator is up, nobody joins; instead of JAX's abort
    with a stack trace, one line within --coordinator-timeout."""
    start = time.monotonic()
    alone = python("-m", "minimaml.sinusoid", "--out", str(tmp_path / "run"), "--meta-batch",
                   "4", "--distributed", "--coordinator", f"127.0.0.1:{free_port()}",
                   "--processes", "2", "--process-id", "0", "--coordinator-timeout", "2",
                   env=CPU)
    status, _, stderr = finish(alone, timeout=120)
    assert status == 2 and error_lines(stderr) == [
        "error: --distributed: the processes did not all join within 2 s "
        "(--coordinator-timeout); start them all, each with its --process-id"]
    assert time.monotonic() - start < 60
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("cli", [sin_cli, og_cli])
def test_more_devices_than_jax_started_with_are_refused(cli, tmp_path, capsys):
    available = len(jax.devices())      # JAX has started here: its devices are fixed
    assert cli.main(["--out", str(tmp_path / "run"), "--devices", str(available + 1)]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: --devices must be an integer in 1..{available} (")
    assert line.endswith(f"; got {available + 1}")
    assert not (tmp_path / "run").exists()


def test_an_absent_coordinator_is_one_line_within_the_timeout(tmp_path, capsys):
    start = time.monotonic()
    status = og_cli.main(["--out", str(tmp_path / "run"), "--distributed", "--coordinator",
                          f"127.0.0.1:{free_port()}", "--processes", "2", "--process-id", "1",
                          "--coordinator-timeout", "1"])
    assert status == 2 and time.monotonic() - start < 10
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith("error: --distributed: coordinator 127.0.0.1:")
    assert line.endswith("did not answer within 1 s (is process 0 running there?)")
    assert not jax.distributed.is_initialized()


@pytest.mark.slow
def test_two_cli_processes_end_with_the_same_params(tmp_path):
    """``--distributed`` for real: two processes on 127.0.0.1, each writing its own --out."""
    address = f"127.0.0.1:{free_port()}"
    argv = ["--meta-steps", "4", "--meta-batch", "4", "--eval-tasks", "5", "--eval-steps", "1",
            "--no-progress", "--distributed", "--coordinator", address, "--processes", "2"]
    processes = [python("-m", "minimaml.sinusoid", *argv, "--process-id", str(i), "--out",
                        str(tmp_path / f"process{i}"), env=CPU) for i in (0, 1)]
    try:
        results = [finish(process) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for status, _, stderr in results:
        assert status == 0, stderr[-3000:]
    metrics = [json.loads((tmp_path / f"process{i}" / "metrics.json").read_text())
               for i in (0, 1)]
    assert [m["devices"]["process_id"] for m in metrics] == [0, 1]
    assert all(m["devices"]["processes"] == 2 and m["devices"]["devices"] == 2
               for m in metrics)
    assert metrics[0]["maml"] == metrics[1]["maml"]
    for name in ("maml_params.npz", "pretrained_params.npz"):
        first, second = (jax.tree.leaves(npz.load(tmp_path / f"process{i}" / name)[0])
                         for i in (0, 1))
        for x, y in zip(first, second):
            np.testing.assert_array_equal(x, y)
