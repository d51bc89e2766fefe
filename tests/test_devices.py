"""The task axis across devices and processes (minimaml/devices.py and the devices= argument
of optimize, meta_train, pretrain and finetune_curves).

The simulated devices (JAX_NUM_CPU_DEVICES) must be set before JAX starts, so those checks
run in subprocesses: tests/sharded_run.py (N devices) and tests/distributed_run.py (two
processes talking over 127.0.0.1, CPU backend).
"""
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import minimaml
from minimaml import sinusoid
from minimaml.devices import (TASK_AXIS, TaskShares, initialize_distributed, process_share,
                              task_mesh, task_sharding, use_cpu_devices)
from minimaml.evaluate import finetune_curves
from minimaml.train import meta_train, optimize

TESTS = pathlib.Path(__file__).parent


def environment(devices=1):
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices))
    env["PYTHONPATH"] = os.pathsep.join(
        [str(pathlib.Path(minimaml.__file__).parent.parent), env.get("PYTHONPATH", "")])
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("devices", [4, 8])
def test_sharded_training_and_evaluation_match_one_device(devices):
    done = subprocess.run([sys.executable, str(TESTS / "sharded_run.py"), str(devices)],
                          env=environment(devices), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["devices"] == devices
    # The meta-gradient: a meta-batch that divides, and 5 tasks (uneven over 4 devices;
    # over 8, three devices hold only padding).
    for meta_batch in (devices * 3, 5):
        assert report[f"gradient_scale_{meta_batch}"] > 1e-2
        assert report[f"gradient_difference_{meta_batch}"] < 1e-5, meta_batch
    assert report["padding_finite"] and report["padding_difference"] < 1e-6
    # Inside optimize's jitted step the task batch is split along "tasks"...
    assert report["batch_sharding"] == [
        f"NamedSharding(mesh=Mesh('tasks': {devices}, axis_types=(Auto,)), spec=P('tasks',), "
        f"memory_kind=device)"]
    # ... and the params come back whole on every device.
    assert "spec=P()" in report["params_sharding"]
    assert report["loss_difference"] < 1e-5 and report["params_difference"] < 1e-6
    assert report["omniglot_difference"] < 1e-5
    for chunk in ("None", "2"):
        assert report[f"curves_shape_{chunk}"] == [11, 4]
        assert report[f"curves_difference_{chunk}"] < 1e-4


@pytest.mark.slow
def test_two_processes_end_with_the_params_of_one_process(tmp_path):
    """Two processes on 127.0.0.1, each drawing 3 tasks a step from fold_in(key, process):
    both end with the same params, equal to one process drawing the same 6 tasks."""
    address = f"127.0.0.1:{free_port()}"
    workers = [subprocess.Popen([sys.executable, str(TESTS / "distributed_run.py"),
                                 str(tmp_path / f"process{i}.npz"), address, "2", str(i)],
                                env=environment(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    try:
        outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    single = subprocess.run([sys.executable, str(TESTS / "distributed_run.py"),
                             str(tmp_path / "single.npz"), "single", "2"], env=environment(),
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    first, second, alone = (np.load(tmp_path / f"{name}.npz")
                            for name in ("process0", "process1", "single"))
    assert int(first["processes"]) == 2 and int(first["devices"]) == 2
    assert int(alone["processes"]) == 1
    assert str(first["share_error"]).startswith("meta_batch 7 does not divide among 2 processes")
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
        if name.startswith("param") or name in ("losses", "curves"):
            assert first[name].shape == alone[name].shape, name
            np.testing.assert_allclose(first[name], alone[name], rtol=1e-5, atol=1e-6,
                                       err_msg=name)
    assert first["losses"].shape == (6,) and first["curves"].shape == (7, 3)
    start = jax.tree.leaves(sinusoid.init_params(jax.random.key(0)))[0]
    assert np.abs(first["param0"] - start).max() > 1e-3       # the params did move


def test_task_shares_draw_each_share_from_its_own_key():
    sampler = sinusoid.task_sampler(3, 4, 5)
    key = jax.random.key(7)
    support, query = TaskShares(sampler, 2)(key)
    assert support[0].shape == (6, 4, 1) and query[0].shape == (6, 5, 1)
    for share in (0, 1):
        own_support, own_query = sampler(jax.random.fold_in(key, share))
        np.testing.assert_array_equal(support[0][3 * share:3 * share + 3], own_support[0])
        np.testing.assert_array_equal(query[1][3 * share:3 * share + 3], own_query[1])
    assert not np.array_equal(support[0][:3], support[0][3:])


def test_one_device_changes_nothing():
    key = jax.random.key(0)
    params = sinusoid.init_params(key)
    runs = [meta_train(params, sinusoid.sine_loss, sinusoid.task_sampler(5, 10, 10), key,
                       meta_steps=20, inner_lr=0.01, steps_per_call=10, **extra)
            for extra in ({}, {"devices": 1}, {"devices": task_mesh(1)})]
    for run in runs[1:]:
        np.testing.assert_array_equal(runs[0][2], run[2])
        for x, y in zip(jax.tree.leaves(runs[0][0]), jax.tree.leaves(run[0])):
            np.testing.assert_array_equal(x, y)
    assert task_sharding(None) is None and task_sharding(1) is None


def test_tasks_split_over_devices_are_padded_with_the_last_task():
    """The rule behind an uneven split (tested end to end in the sharded subprocess run;
    here in-process, where only one device exists): 5 tasks over 4 devices become 4 rows
    of 2, the last task repeated to fill; a count that divides is only reshaped."""
    from minimaml.evaluate import _split_rows
    tasks = np.arange(10.0).reshape(5, 2)
    split = np.asarray(_split_rows(tasks, 4))
    assert split.shape == (4, 2, 2)
    np.testing.assert_array_equal(split.reshape(8, 2)[:5], tasks)
    np.testing.assert_array_equal(split.reshape(8, 2)[5:], np.repeat(tasks[-1:], 3, axis=0))
    np.testing.assert_array_equal(np.asarray(_split_rows(tasks, 5)), tasks.reshape(5, 1, 2))


def test_task_mesh_takes_a_count_a_list_or_a_mesh():
    mesh = task_mesh(1)
    assert mesh.axis_names == (TASK_AXIS,) and mesh.size == 1
    assert task_mesh(jax.devices()[:1]).size == 1
    explicit = jax.make_mesh((1,), (TASK_AXIS,))          # jax 0.10's default: Explicit
    assert task_mesh(explicit).axis_types == (jax.sharding.AxisType.Auto,)


@pytest.mark.parametrize("devices, message", [
    (0, r"devices must be an integer in 1\.\.1; got 0"),
    (2, r"devices must be an integer in 1\.\.1; got 2"),
    (1.5, r"devices must be an integer in 1\.\.1; got 1\.5"),
    ([], r"devices must be None, a count >= 1, a non-empty list"),
    ("cpu", r"devices must be an integer"),
])
def test_bad_device_counts_are_refused_naming_the_argument(devices, message):
    params = sinusoid.init_params(jax.random.key(0))
    with pytest.raises(ValueError, match=message):
        optimize(params, lambda p, s, q: 0.0, sinusoid.task_sampler(2, 2, 2),
                 jax.random.key(0), steps=1, devices=devices)
    tasks = sinusoid.sample_tasks(jax.random.key(1), 2, 2, 2)
    with pytest.raises(ValueError, match=message):
        finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, 0.01, 1,
                        devices=devices)


def test_a_mesh_without_the_task_axis_is_refused():
    params = sinusoid.init_params(jax.random.key(0))
    mesh = jax.make_mesh((1,), ("batch",))
    with pytest.raises(ValueError, match=r"devices: the mesh must have an axis named 'tasks'.*"
                                         r"its axes are \('batch',\)"):
        meta_train(params, sinusoid.sine_loss, sinusoid.task_sampler(2, 2, 2),
                   jax.random.key(0), meta_steps=1, inner_lr=0.01, devices=mesh)


def test_an_absent_coordinator_fails_in_bounded_time_with_one_line():
    start = time.monotonic()
    with pytest.raises(ValueError) as caught:
        initialize_distributed(f"127.0.0.1:{free_port()}", 2, 1, timeout=2)
    assert time.monotonic() - start < 10
    message = str(caught.value)
    assert "\n" not in message and "did not answer within 2 s" in message
    assert not jax.distributed.is_initialized()


@pytest.mark.parametrize("arguments, message", [
    (("127.0.0.1", 2, 1), r"coordinator must be host:port"),
    (("127.0.0.1:99999", 2, 1), r"coordinator must be host:port"),
    (("127.0.0.1:1234", 0, 0), r"processes must be an integer >= 1; got 0"),
    (("127.0.0.1:1234", 2, 2), r"process_id must be in 0\.\.1 \(processes=2\); got 2"),
    (("127.0.0.1:1234", 2, -1), r"process_id must be an integer >= 0; got -1"),
])
def test_bad_distributed_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        initialize_distributed(*arguments, timeout=1)


def test_process_zero_refuses_an_address_it_cannot_serve():
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=rf"process 0 cannot listen on port {port}"):
            initialize_distributed(f"127.0.0.1:{port}", 2, 0, timeout=1)


def test_nothing_given_and_nothing_detected_is_refused_in_one_line():
    # In a fresh process: jax.distributed.initialize refuses to run once JAX has started.
    script = ("from minimaml.devices import initialize_distributed\n"
              "try:\n    initialize_distributed(timeout=1)\n"
              "except ValueError as err:\n    print(repr(err))\n")
    env = environment()
    for variable in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(variable, None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == (
        "NotGiven('coordinator, processes and process_id not given: give coordinator, "
        "processes and process_id, or set $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, "
        "$JAX_PROCESS_ID')"), done.stderr[-2000:]


def test_the_environment_fills_in_what_the_arguments_leave_out(monkeypatch):
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match=r"processes \(\$JAX_NUM_PROCESSES\) must be an "
                                         r"integer >= 1; got 'two'"):
        initialize_distributed("127.0.0.1:1234", None, 1, timeout=1)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    with pytest.raises(ValueError, match=r"process_id must be in 0\.\.1"):
        initialize_distributed("127.0.0.1:1234", timeout=1)


def test_use_cpu_devices_before_jax_starts():
    script = ("from minimaml.devices import use_cpu_devices; import jax; use_cpu_devices(3); "
              "print(len(jax.devices()))")
    done = subprocess.run([sys.executable, "-c", script], env=environment(), text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "3"


def test_use_cpu_devices_after_jax_started_keeps_its_devices():
    jax.devices()
    assert use_cpu_devices(1) == 1 and len(jax.devices()) == 1
    use_cpu_devices(4)                              # too late: refused where it is used
    with pytest.raises(ValueError, match=r"devices must be an integer in 1\.\.1; got 4"):
        task_mesh(4)
    with pytest.raises(ValueError, match=r"devices must be an integer >= 1; got 0"):
        use_cpu_devices(0)


def test_process_share_divides_the_meta_batch():
    assert process_share(25) == 25                  # one process draws it all
