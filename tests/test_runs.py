"""Runs never lose or mix results (minimaml/runs.py and the two experiments that use it).

- the output folder: a set of outputs appears whole or not at all, also when the
  process is SIGKILLed during the final write; a failed run leaves the old set;
  stale leftovers of killed runs are removed on the next start (issue 10, items 3, 14);
- the lock: a second run on the same folder is refused while the first runs (item 4);
- resuming: only the same run, on the same data (item 2);
- Ctrl-C: the finished parts are saved and the line says where (item 8);
- the memory limit the user can raise (item 5).
"""
import dataclasses
import json
import os
import shutil
import signal
import time

import pytest

from minimaml import npz, runs, sinusoid
from minimaml import omniglot as og
from minimaml.runs import Interrupted, RunFolder

from fakes import TINY_FLAGS, error_lines, fake_omniglot, finish, python, tiny_config, write_npz

SINUSOID_RUN = ["--meta-steps", "20", "--eval-tasks", "10", "--no-progress"]
SINUSOID_OUTPUTS = ("maml_params.npz", "pretrained_params.npz", "metrics.json", "sinusoid.png")


def contents(folder):
    """{name: bytes} of the files directly in ``folder``, hidden ones left out."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".")}


# --- the output folder ------------------------------------------------------------

def test_commit_replaces_the_whole_set_and_leaves_other_files(tmp_path):
    with RunFolder(tmp_path, outputs=("a.txt", "b.txt")) as folder:
        folder.stage("a.txt").write_text("a1")
        folder.stage("b.txt").write_text("b1")
        assert not (tmp_path / "a.txt").exists()      # nothing shows before the commit
        folder.commit()
    (tmp_path / "notes.txt").write_text("mine")
    with RunFolder(tmp_path, outputs=("a.txt", "b.txt")) as folder:
        folder.stage("a.txt").write_text("a2")        # this run makes no b.txt
        folder.commit()
    assert contents(tmp_path) == {"a.txt": b"a2", "notes.txt": b"mine"}
    assert not list(tmp_path.glob(".staging-*")) and not (tmp_path / runs.JOURNAL_NAME).exists()


def test_a_failed_run_leaves_the_previous_set(tmp_path):
    with RunFolder(tmp_path, outputs=("a.txt",)) as folder:
        folder.stage("a.txt").write_text("old")
        folder.commit()
    with pytest.raises(RuntimeError):
        with RunFolder(tmp_path, outputs=("a.txt",)) as folder:
            folder.stage("a.txt").write_text("new")
            raise RuntimeError("the run failed before its commit")
    assert contents(tmp_path) == {"a.txt": b"old"}
    assert not list(tmp_path.glob(".staging-*"))


def test_a_diverging_sinusoid_run_does_not_touch_the_previous_results(tmp_path, capsys):
    # issue 10, item 3: the failed run used to replace maml_params.npz, keeping metrics.json
    assert sinusoid.main([*SINUSOID_RUN, "--out", str(tmp_path)]) == 0
    before = contents(tmp_path)
    assert set(before) == set(SINUSOID_OUTPUTS)
    capsys.readouterr()
    assert sinusoid.main([*SINUSOID_RUN, "--inner-lr", "1e6", "--out", str(tmp_path)]) == 2
    assert "diverged" in capsys.readouterr().err
    assert contents(tmp_path) == before


def test_stale_leftovers_of_killed_runs_are_removed_on_the_next_start(tmp_path):
    # issue 10, item 14: an interrupted checkpoint write left checkpoint.tmp<pid>.npz behind
    process = python("-c", "import os, pathlib, signal, sys\n"
                           "from minimaml import npz\n"
                           "def write(f):\n"
                           "    f.write(b'half a checkpoint')\n"
                           "    f.flush()\n"
                           "    os.kill(os.getpid(), signal.SIGKILL)\n"
                           "npz.atomic_write(pathlib.Path(sys.argv[1]) / 'checkpoint.npz',\n"
                           "                 write)\n",
                     str(tmp_path))
    assert finish(process)[0] == -signal.SIGKILL
    killed_write = npz.temp_path(tmp_path / "checkpoint.npz").with_name(
        f".checkpoint.npz.tmp{process.pid}")
    assert killed_write.exists()
    older = tmp_path / "checkpoint.tmp4242.npz"             # the name older versions used
    older.write_bytes(b"x")
    (tmp_path / ".staging-4242-1").mkdir()
    (tmp_path / ".staging-4242-1" / "metrics.json").write_text("{}")
    (tmp_path / "checkpoint.npz").write_bytes(b"kept")
    with RunFolder(tmp_path) as folder:
        assert sorted(p.name for p in folder.cleaned) == sorted(
            [killed_write.name, older.name, ".staging-4242-1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "checkpoint.npz"]


KILL_DURING_COMMIT = """
import os, signal, sys
from minimaml import runs
if sys.argv[1] == "before_journal":     # every output written, none moved into place yet
    def hook(path, plan):
        os.kill(os.getpid(), signal.SIGKILL)
    runs._write_journal = hook
else:                                   # the first output moved into place, the rest not
    rename = runs._rename
    def hook(source, target):
        rename(source, target)
        os.kill(os.getpid(), signal.SIGKILL)
    runs._rename = hook
from minimaml.sinusoid.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A complete sinusoid run's folder (seed 0)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    code, _, err = finish(python("-m", "minimaml.sinusoid", *SINUSOID_RUN, "--out", str(out)))
    assert code == 0, err
    return out


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before_journal", "during_renames"])
def test_sigkill_during_the_final_write_leaves_one_complete_set(finished_run, tmp_path, when):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    old = contents(out)
    code, _, err = finish(python("-c", KILL_DURING_COMMIT, when, *SINUSOID_RUN, "--seed", "1",
                                 "--out", str(out)))
    assert code == -signal.SIGKILL, err
    if when == "before_journal":
        assert contents(out) == old                  # the old set, untouched
    else:
        mixed = contents(out)                        # one new file in place, a journal left
        assert sum(mixed[name] != old[name] for name in SINUSOID_OUTPUTS) == 1
        assert (out / runs.JOURNAL_NAME).exists()
    with RunFolder(out):                             # the next run on the folder
        pass
    now = contents(out)
    assert set(now) == set(SINUSOID_OUTPUTS)
    if when == "before_journal":
        assert now == old
    else:                                            # the killed run's set, completed
        assert all(now[name] != old[name] for name in SINUSOID_OUTPUTS)
        assert json.loads(now["metrics.json"])["config"]["seed"] == 1
    assert not list(out.glob(".staging-*")) and not (out / runs.JOURNAL_NAME).exists()


# --- the lock ---------------------------------------------------------------------

def test_a_locked_folder_is_refused_before_any_work(tmp_path):
    with RunFolder(tmp_path):
        with RunFolder(tmp_path):                    # the same process may open it again
            pass
        code, stdout, err = finish(python("-m", "minimaml.sinusoid", *SINUSOID_RUN,
                                          "--out", str(tmp_path)))
        assert code == 2 and stdout == "", err
        assert error_lines(err) == [f"error: {tmp_path} is being written by another run (pid "
                                    f"{os.getpid()} since {lock_time(tmp_path)}); wait for it "
                                    f"to end, or choose another --out"]
    with RunFolder(tmp_path):                        # released when the holder closed it
        pass


def lock_time(folder):
    return (folder / ".lock").read_text().split(" since ")[1].strip()


@pytest.mark.slow
def test_two_runs_on_one_out_the_second_is_refused_and_ctrl_c_saves_the_first(tmp_path):
    # issue 10, item 4 (both used to report success) and item 8 (SIGINT saved nothing)
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text('{"an": "earlier result"}')
    first = python("-m", "minimaml.sinusoid", "--meta-steps", "5000000", "--no-progress",
                   "--out", str(out))
    deadline = time.monotonic() + 300
    while f"pid {first.pid}" not in ((out / ".lock").read_text() if (out / ".lock").exists()
                                     else ""):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    code, _, err = finish(python("-m", "minimaml.sinusoid", *SINUSOID_RUN, "--out", str(out)))
    assert code == 2 and error_lines(err) == [
        f"error: {out} is being written by another run (pid {first.pid} since "
        f"{lock_time(out)}); wait for it to end, or choose another --out"], err
    time.sleep(2)
    first.send_signal(signal.SIGINT)
    code, _, err = finish(first)
    assert code == 130, err
    assert "Traceback" not in err
    last = error_lines(err)[-1]
    assert last.startswith("interrupted: stopped during MAML training; saved the MAML params "
                           "(after ") and f"of 5000000 steps) in {out}/interrupted/" in last
    steps = json.loads((out / "interrupted" / "interrupted.json").read_text())["steps"]
    assert steps["pretrained"] == 0 and 0 < steps["maml"] < 5000000
    assert f"after {steps['maml']} of" in last
    sinusoid.load_params(out / "interrupted" / "maml_params.npz")
    assert (out / "metrics.json").read_text() == '{"an": "earlier result"}'


def test_ctrl_c_during_pretraining_saves_the_finished_maml_params(tmp_path, monkeypatch):
    pretrain = sinusoid.experiment.pretrain

    def pretrain_then_ctrl_c(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return pretrain(*args, **kwargs)
    monkeypatch.setattr(sinusoid.experiment, "pretrain", pretrain_then_ctrl_c)
    lines, handler = [], signal.getsignal(signal.SIGINT)
    config = sinusoid.Config(meta_steps=2000, eval_tasks=10)
    with pytest.raises(Interrupted) as caught:
        sinusoid.run(config, tmp_path, progress=False, log=lines.append)
    assert str(caught.value) == (
        f"stopped during pretraining; saved the MAML params (finished) and the pretrained "
        f"params (after 1000 of 2000 steps) in {tmp_path}/interrupted/ (the results already "
        f"in {tmp_path} are as they were)")
    assert lines and lines[0].startswith("Ctrl-C: stopping at the end of this chunk")
    assert sorted(p.name for p in (tmp_path / "interrupted").iterdir()) == [
        "interrupted.json", "maml_params.npz", "pretrained_params.npz"]
    assert not any((tmp_path / name).exists() for name in SINUSOID_OUTPUTS)
    assert signal.getsignal(signal.SIGINT) is handler              # put back


@pytest.mark.slow
def test_ctrl_c_in_omniglot_saves_a_checkpoint_and_the_run_resumes(tmp_path):
    data = write_npz(tmp_path / "fake.npz")
    out = tmp_path / "run"
    flags = ["--data", str(data), "--out", str(out), "--checkpoint-minutes", "0", *TINY_FLAGS]
    env = {"MINIMAML_CACHE": str(tmp_path / "cache")}
    process = python("-m", "minimaml.omniglot", "--meta-steps", "1000000", *flags, env=env)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.npz").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    code, stdout, err = finish(process)
    assert code == 130, err
    assert "Traceback" not in err and "Ctrl-C: stopping" in stdout
    _, extra = npz.load(out / "checkpoint.npz")
    step = int(extra["step"])
    assert error_lines(err) == [f"interrupted: stopped at step {step} of 1000000; checkpoint "
                                f"saved in {out}/checkpoint.npz (run the same command again to "
                                f"resume)"]
    code, stdout, err = finish(python("-m", "minimaml.omniglot", "--meta-steps", str(step + 2),
                                      *flags, env=env))
    assert code == 0, err
    assert f"resuming from {out}/checkpoint.npz at step {step}" in stdout
    assert json.loads((out / "metrics.json").read_text())["meta_steps"] == step + 2


# --- resuming ---------------------------------------------------------------------

def test_resume_only_the_same_run_on_the_same_data(tmp_path):
    # issue 10, item 2: resuming ignored the dataset
    data = fake_omniglot()
    config = tiny_config()
    og.train(config, data, tmp_path, progress=False)
    other = data._replace(images=data.images.copy())
    other.images[3, 4, 10, 10] += 0.5                     # one pixel of one drawing
    with pytest.raises(ValueError, match=r"checkpoint.npz was trained on other data \(12 "
                                         r"characters, sha256 \w{12}\.\.\.; this run's data: 12"):
        og.train(dataclasses.replace(config, meta_steps=4), other, tmp_path, progress=False)
    for field, value in (("inner_lr", 0.1), ("eval_tasks", 8), ("seed", 1)):
        with pytest.raises(ValueError, match=f"another config \\({field} "):
            og.train(dataclasses.replace(config, meta_steps=4, **{field: value}), data,
                     tmp_path, progress=False)
    log = []
    _, history = og.train(dataclasses.replace(config, meta_steps=4, eval_every=2,
                                              steps_per_call=2), data, tmp_path,
                          progress=False, log=log.append)
    assert f"resuming from {tmp_path}/checkpoint.npz at step 2" in log
    assert history["steps"] == 4 and len(history["losses"]) == 4
    assert history["data"] == og.data_record(data)


def test_a_checkpoint_that_predates_the_data_record_resumes_with_a_warning(tmp_path):
    from minimaml.train import default_opt_state
    data, config = fake_omniglot(), tiny_config()
    og.train(config, data, tmp_path, progress=False)
    checkpoint = tmp_path / "checkpoint.npz"
    params = og.init_params(config)
    step, params, opt_state, state = og.load_checkpoint(checkpoint, params,
                                                        default_opt_state(params))
    del state["data"]                                     # as older versions wrote it
    og.save_checkpoint(checkpoint, step, params, opt_state, state)
    log = []
    _, history = og.train(dataclasses.replace(config, meta_steps=3), data, tmp_path,
                          progress=False, log=log.append)
    assert log[0] == (f"warning: {checkpoint} does not record its data (an older checkpoint); "
                      f"assuming it was trained on this data")
    assert history["steps"] == 3 and history["data"] == og.data_record(data)


def test_metrics_record_the_data(tmp_path):
    data = fake_omniglot()
    _, metrics, _ = og.run(tiny_config(), data, tmp_path, progress=False, data_source="here")
    assert metrics["data"] == {"sha256": og.content_sha256(data), "characters": 12,
                               "source": "here"}
    assert json.loads((tmp_path / "metrics.json").read_text())["data"] == metrics["data"]


# --- the memory limit -------------------------------------------------------------

def test_the_memory_limit_refuses_before_training_and_can_be_raised(tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.setattr(sinusoid.experiment, "train",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("training started")))
    estimate = sinusoid.estimate_memory(sinusoid.Config(eval_tasks=2_000_000))
    gib = estimate["the meta-test"][0] / 2**30
    limit = f"{gib / 2:.3f}"
    flags = ["--eval-tasks", "2000000", "--out", str(tmp_path / "run"), "--no-progress"]
    assert sinusoid.main([*flags, "--memory-limit-gb", limit]) == 2
    assert error_lines(capsys.readouterr().err) == [
        f"error: the meta-test would need about {gib:,.1f} GiB for its largest arrays, more "
        f"than the memory limit of {float(limit):,.1f} GiB; lower --eval-tasks or "
        f"--eval-steps, or raise --memory-limit-gb if you know it fits"]
    assert not (tmp_path / "run").exists()
    with pytest.raises(RuntimeError, match="training started"):   # past the check
        sinusoid.main([*flags, "--memory-limit-gb", f"{2 * gib:.3f}"])
