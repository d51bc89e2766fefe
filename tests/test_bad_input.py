"""Bad input gets one clear line (issue 10): the issue's fourteen reproductions and every bad
flag of both command lines — a message naming the flag (or the file) and what is allowed,
no traceback, a non-zero exit, before any long work starts.

Where each item of the issue is reproduced:
  1 test_item01_a_short_meta_test_prints_its_table
  2 test_item02_resuming_on_other_data_is_refused_and_metrics_name_the_data; also
    test_runs.py::test_resume_only_the_same_run_on_the_same_data
  3 test_runs.py::test_a_diverging_sinusoid_run_does_not_touch_the_previous_results and
    test_runs.py::test_sigkill_during_the_final_write_leaves_one_complete_set
  4 test_runs.py::test_two_runs_on_one_out_the_second_is_refused_and_ctrl_c_saves_the_first,
    test_runs.py::test_a_locked_folder_is_refused_before_any_work
  5 test_item05_*; test_runs.py::test_the_memory_limit_refuses_before_training_and_can_be_raised
  6 test_item06_*
  7 test_item07_mse_loss_refuses_mismatched_shapes
  8 test_item08_*; Ctrl-C: test_runs.py::test_ctrl_c_*, test_runs.py::test_two_runs_*
  9 test_item09_omniglot_meta_test_divergence_is_reported
 10 test_item10_an_edited_png_of_the_same_size_is_read_again
 11 test_item11_checkpoint_minutes_names_the_flag_and_the_typed_value
 12 test_item12_a_huge_zip_member_is_refused_before_it_is_unpacked
 13 test_item13_*
 14 test_runs.py::test_stale_leftovers_of_killed_runs_are_removed_on_the_next_start
"""
import errno
import json
import re
import struct
import tracemalloc
import zipfile
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minimaml import npz, sinusoid
from minimaml import omniglot as og
from minimaml.evaluate import finetune_curves
from minimaml.losses import mse_loss
from minimaml.nets import mlp_apply
from minimaml.omniglot import cli as og_cli
from minimaml.sinusoid import cli as sin_cli
from minimaml.train import TrainingDiverged

from fakes import (TINY_FLAGS, drawings, error_lines, fake_omniglot, tiny_config, write_npz,
                   write_png_tree)

SMALL_SINUSOID = ["--meta-steps", "5", "--eval-tasks", "20", "--no-progress"]


@pytest.fixture(scope="module")
def fake_npz(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("data") / "fake.npz")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMAML_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if training starts: the checks must come before the work."""
    def refuse(*args, **kwargs):
        pytest.fail("training started before the bad input was refused")
    monkeypatch.setattr(sinusoid.experiment, "train", refuse)
    monkeypatch.setattr(og.experiment, "_train", refuse)


def one_error(main, argv, capsys, status=2):
    """Run a CLI in-process; assert it exits with ``status`` printing one line, no
    traceback; return that line."""
    assert main([str(a) for a in argv]) == status
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in lines[0]
    return lines[0]


# --- every bad flag of both command lines ----------------------------------------

# --devices and --distributed (issue 15), the same on both command lines; those that need a
# fresh process or a timeout are in test_cli_devices.py.
DEVICES_BAD = [
    (["--devices", "0"], "--devices must be an integer >= 1; got 0"),
    (["--distributed", "--processes", "0"], "--processes must be an integer >= 1; got 0"),
    (["--distributed", "--processes", "3", "--devices", "2", "--meta-batch", "6"],
     "--devices must be a multiple of the processes (3): each process gives the same number "
     "of devices; got 2"),
    (["--distributed", "--processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:9",
      "--meta-batch", "4"], "--process-id must be in 0..1 (processes=2); got 2"),
    (["--distributed", "--processes", "2", "--process-id", "-1", "--coordinator", "127.0.0.1:9",
      "--meta-batch", "4"], "--process-id must be an integer >= 0; got -1"),
    (["--distributed", "--processes", "2", "--process-id", "0", "--coordinator", "nowhere",
      "--meta-batch", "4"],
     "--coordinator must be host:port (e.g. 127.0.0.1:1234); got 'nowhere'"),
    (["--coordinator", "127.0.0.1:9"], "--coordinator goes with --distributed; add it to join "
                                       "a multi-process run"),
    (["--processes", "2", "--process-id", "1"], "--processes and --process-id go with "
                                                "--distributed"),
    (["--coordinator-timeout", "0.5"], "--coordinator-timeout must be a finite number >= 1; "
                                       "got 0.5"),
    (["--distributed", "--processes", "4", "--meta-batch", "6"],
     "--meta-batch must be a multiple of the processes (4): each process draws an equal share "
     "of the tasks; got 6"),
]

SINUSOID_BAD = [
    (["--meta-steps", "0"], "--meta-steps must be an integer in 1..2147483647; got 0"),
    (["--meta-steps", "2147483648"], "--meta-steps must be an integer in 1..2147483647"),
    (["--meta-batch", "0"], "--meta-batch must be an integer >= 1; got 0"),
    (["--support-size", "0"], "--support-size must be an integer >= 1; got 0"),
    (["-K", "-3"], "--support-size must be an integer >= 1; got -3"),
    (["--query-size", "0"], "--query-size must be an integer >= 1; got 0"),
    (["--inner-steps", "-1"], "--inner-steps must be an integer >= 0; got -1"),
    (["--inner-lr", "0"], "--inner-lr must be a finite number > 0; got 0.0"),
    (["--inner-lr", "nan"], "--inner-lr must be a finite number > 0; got nan"),
    (["--meta-lr", "inf"], "--meta-lr must be a finite number > 0; got inf"),
    (["--first-order=yes"], "argument --first-order: ignored explicit argument 'yes'"),
    (["--seed", "-1"], "--seed must be an integer in 0..9223372036854775807; got -1"),
    (["--seed", "99999999999999999999"], "--seed must be an integer in "
                                         "0..9223372036854775807; got 99999999999999999999"),
    (["--eval-tasks", "0"], "--eval-tasks must be an integer >= 1; got 0"),
    (["--eval-steps", "-1"], "--eval-steps must be an integer >= 0; got -1"),
    (["--out", "{file}"], "--out must be a folder to write the run's outputs in; got '{file}' "
                          "(a file of that name is in the way)"),
    (["--memory-limit-gb", "0"], "--memory-limit-gb must be a finite number > 0; got 0.0"),
    (["--no-progress=1"], "argument --no-progress: ignored explicit argument '1'"),
    (["--algorithm", "mamlx"], "--algorithm must be one of maml, fomaml, metasgd, anil, mamlpp, "
                               "reptile, imaml; got 'mamlx'"),
    (["--algorithm-option", "reg"], "argument --algorithm-option: expected NAME=VALUE, got "
                                    "'reg'"),
    (["--algorithm", "imaml", "--algorithm-option", "regg=1"], "imaml has no option 'regg'"),
    *DEVICES_BAD,
]

OMNIGLOT_BAD = [
    (["--ways", "1"], "--ways must be an integer >= 2; got 1"),
    (["-N", "0"], "--ways must be an integer >= 2; got 0"),
    (["--shots", "0"], "--shots must be an integer in 1..19; got 0"),
    (["-K", "20"], "--shots must be an integer in 1..19; got 20"),
    (["--shots", "10"], "--eval-queries must be at most 10 (each character has 20 drawings, "
                        "shots=10 of them in the support set); got 15"),
    (["--meta-steps", "0"], "--meta-steps must be an integer in 1..2147483647; got 0"),
    (["--data", "{missing}"], "--data: Omniglot data not found: {missing} does not exist"),
    (["--data", "{file}"], "--data: {file}: unsupported file type '' (allowed: a directory, "
                           ".zip, .npz)"),
    (["--out", "{file}"], "--out must be a folder to write the run's outputs in; got '{file}'"),
    (["--first-order=1"], "argument --first-order: ignored explicit argument '1'"),
    (["--remat=1"], "argument --remat: ignored explicit argument '1'"),
    (["--meta-batch", "0"], "--meta-batch must be an integer >= 1; got 0"),
    (["--inner-steps", "-1"], "--inner-steps must be an integer >= 0; got -1"),
    (["--inner-lr", "-0.4"], "--inner-lr must be a finite number > 0; got -0.4"),
    (["--eval-inner-steps", "-2"], "--eval-inner-steps must be an integer >= 0; got -2"),
    (["--meta-lr", "nan"], "--meta-lr must be a finite number > 0; got nan"),
    (["--queries", "0"], "--queries must be an integer >= 1; got 0"),
    (["--queries", "2"], "--eval-queries must be a multiple of queries (2): test queries go "
                         "through the net in training-shaped groups; got 15"),
    (["--eval-queries", "0"], "--eval-queries must be an integer >= 1; got 0"),
    (["--eval-tasks", "0"], "--eval-tasks must be an integer >= 1; got 0"),
    (["--eval-every", "-1"], "--eval-every must be an integer >= 0; got -1"),
    (["--filters", "0"], "--filters must be an integer >= 1; got 0"),
    (["--train-characters", "0"], "--train-characters must be an integer >= 1; got 0"),
    (["--train-characters", "12"], "--train-characters must be an integer in 1..11; got 12"),
    (["--steps-per-call", "0"], "--steps-per-call must be an integer >= 1; got 0"),
    (["--seed", "99999999999999999999"], "--seed must be an integer in 0..9223372036854775807"),
    (["--checkpoint-minutes", "nan"], "--checkpoint-minutes must be a finite number >= 0; "
                                      "got nan"),
    (["--max-minutes", "-1"], "--max-minutes must be a finite number >= 0; got -1.0"),
    (["--memory-limit-gb", "-1"], "--memory-limit-gb must be a finite number > 0; got -1.0"),
    (["--no-progress=1"], "argument --no-progress: ignored explicit argument '1'"),
    (["--max-cpu-minutes", "-1"], "--max-cpu-minutes must be a finite number >= 0; got -1.0"),
    (["--algorithm", "anil2"], "--algorithm must be one of maml, fomaml, metasgd, anil, mamlpp, "
                               "reptile, imaml; got 'anil2'"),
    (["--algorithm", "mamlpp", "--algorithm-option", "rate_meta_lr=-1"],
     "rate_meta_lr must be a finite number > 0; got -1"),
    *DEVICES_BAD,
]


def fill(argv, message, tmp_path):
    places = {"{file}": str(tmp_path / "a_file"), "{missing}": str(tmp_path / "missing")}
    (tmp_path / "a_file").write_text("not a folder")
    for key, value in places.items():
        argv = [a.replace(key, value) for a in argv]
        message = message.replace(key, value)
    return argv, message


@pytest.mark.parametrize("argv, message", SINUSOID_BAD)
def test_every_bad_sinusoid_flag_is_one_line(argv, message, tmp_path, capsys, no_training):
    argv, message = fill(argv, message, tmp_path)
    line = one_error(sin_cli.main, ["--out", tmp_path / "run", *argv], capsys)
    assert message in line


@pytest.mark.parametrize("argv, message", OMNIGLOT_BAD)
def test_every_bad_omniglot_flag_is_one_line(argv, message, fake_npz, tmp_path, capsys,
                                             no_training):
    argv, message = fill(argv, message, tmp_path)
    line = one_error(og_cli.main, ["--data", fake_npz, "--out", tmp_path / "run", *argv],
                     capsys)
    assert message in line


@pytest.mark.parametrize("cli, flag", [(cli, flag) for cli in (sin_cli, og_cli)
                                       for flag in cli.FLAGS if flag.type in (int, float)])
def test_every_number_flag_refuses_text(cli, flag, tmp_path, capsys, no_training):
    line = one_error(cli.main, ["--out", tmp_path, flag.name, "many"], capsys)
    assert line == (f"error: argument {flag.name}{'/' + flag.short if flag.short else ''}: "
                    f"invalid {flag.type.__name__} value: 'many' (see {cli.COMMAND_LINE.prog} "
                    f"--help)")


def test_every_flag_has_a_bad_input_case():
    for cli, cases in ((sin_cli, SINUSOID_BAD), (og_cli, OMNIGLOT_BAD)):
        tried = {arg.split("=")[0] for argv, _ in cases for arg in argv}
        for flag in cli.FLAGS:
            assert flag.name in tried or flag.short in tried, \
                f"{cli.COMMAND_LINE.prog} {flag.name}: add a bad value to this file"


def test_an_unknown_flag_is_one_line(tmp_path, capsys, no_training):
    line = one_error(sin_cli.main, ["--out", tmp_path, "--meta-step", "3", "--fast"], capsys)
    assert line.startswith("error: unrecognized arguments: --fast")


# --- the list --------------------------------------------------------------

def test_item01_a_short_meta_test_prints_its_table(tmp_path, capsys):
    # used to be an IndexError after the outputs were written (steps 1, 5, 10 always read)
    assert sin_cli.main([*SMALL_SINUSOID, "--eval-steps", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("| model | 1 step | 3 steps |") == 3
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for budget, head in ((0, "| model | 0 steps |"), (1, "| model | 1 step |"),
                         (7, "| model | 1 step | 5 steps | 7 steps |")):
        short = {m: {"5": {**metrics[m]["5"], "mse": metrics[m]["5"]["mse"][:1] * (budget + 1),
                           "ci95": metrics[m]["5"]["ci95"][:1] * (budget + 1)}}
                 for m in ("maml", "pretrained")}
        assert sinusoid.format_table(short, "5").splitlines()[0] == head


@pytest.mark.slow
def test_item02_resuming_on_other_data_is_refused_and_metrics_name_the_data(tmp_path, capsys):
    small1, small2 = write_npz(tmp_path / "a.npz"), write_npz(tmp_path / "b.npz", seed=1)
    out = tmp_path / "run"
    flags = ["--out", str(out), *TINY_FLAGS]
    assert og_cli.main(["--data", str(small1), "--meta-steps", "2", *flags]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    data = og.load(small1, progress=False)
    assert metrics["data"] == {"sha256": og.content_sha256(data), "characters": 12,
                               "source": str(small1)}
    capsys.readouterr()
    line = one_error(og_cli.main, ["--data", small2, "--meta-steps", "3", *flags], capsys)
    assert line.startswith(f"error: {out}/checkpoint.npz was trained on other data (12 "
                           f"characters, sha256 {og.content_sha256(data)[:12]}...")
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_item05_an_out_that_cannot_be_written_is_refused_before_training(tmp_path, capsys,
                                                                         no_training):
    blocked = tmp_path / "a_file"
    blocked.write_text("x")
    line = one_error(sin_cli.main, [*SMALL_SINUSOID, "--out", blocked / "run"], capsys)
    assert line == (f"error: --out must be a folder the run can create and write; got "
                    f"'{blocked / 'run'}' (Not a directory)")
    read_only = tmp_path / "read_only"
    read_only.mkdir(mode=0o555)
    target = read_only / "run"
    try:
        target.mkdir()
        target.rmdir()
        target = "/sys/minimaml-cannot-write-here"   # root ignores the mode bits
    except PermissionError:
        pass
    line = one_error(og_cli.main, ["--out", target, *TINY_FLAGS], capsys)
    assert line.startswith(f"error: --out must be a folder the run can create and write; got "
                           f"'{target}' (") and line.endswith(")")


@pytest.mark.parametrize("argv, phase, settings", [
    (["--eval-tasks", "1000000000"], "the meta-test", "--eval-tasks or --eval-steps"),
    (["--eval-steps", "100000000000000000000"], "the meta-test", "--eval-tasks or --eval-steps"),
    (["--meta-steps", "2147483647", "--meta-batch", "100000000"], "the training",
     "--meta-steps or --meta-batch"),
])
def test_item05_sinusoid_sizes_beyond_memory_are_refused_before_training(
        argv, phase, settings, tmp_path, capsys, no_training):
    line = one_error(sin_cli.main, [*argv, "--out", tmp_path / "run", "--no-progress"], capsys)
    assert line.startswith(f"error: {phase} would need about ")
    assert f"; lower {settings}, or raise --memory-limit-gb if you know it fits" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--ways", "7"], "--ways must be at most 6: the data's 12 characters split into "
                      "--train-characters=6 for training and 6 for the meta-test"),
    (["--train-characters", "9", "--ways", "5"], "--ways must be at most 3: "),
    (["--eval-tasks", "100000000"], "the meta-test would need about "),
    (["--meta-batch", "1000000000"], "the training would need about "),
])
def test_item05_omniglot_sizes_the_data_or_memory_cannot_hold_are_refused_before_training(
        argv, message, fake_npz, tmp_path, capsys, no_training):
    line = one_error(og_cli.main, ["--data", fake_npz, "--out", tmp_path / "run", *TINY_FLAGS,
                                   *argv], capsys)
    assert message in line


def test_item06_float_images_are_read_as_numbers_not_bytes(tmp_path):
    images = drawings(8)
    as_bool = og.load(write_npz(tmp_path / "bool.npz", images=images), progress=False)
    for name, converted in (("float.npz", images.astype(np.float32)),
                            ("bytes.npz", np.where(images, 255, 0).astype(np.uint8)),
                            ("ones.npz", images.astype(np.int64))):
        data = og.load(write_npz(tmp_path / name, images=converted), progress=False)
        np.testing.assert_array_equal(data.images, as_bool.images)
    assert 0.02 < as_bool.images.mean() < 0.2     # ink is the small part of a drawing


@pytest.mark.parametrize("images, labels, message", [
    (None, np.ones((8, 20), int), "rows 0 and 1 have the same character id 1 (7 rows repeat "
                                  "an earlier row's id); each row must be its own character"),
    (None, np.arange(160).reshape(8, 20), "row 0 of labels holds several character ids"),
    ("inverted", None, "the images are mostly ink (9"),
    ("float255", None, "images of dtype float32 must hold values in 0..1 (0 = ink); found "
                       "0.0..255"),
    ("strings", None, "images must be bool, integers or floats; got dtype <U1"),
    ("wide", None, "drawings of 3000x1 pixels, larger than 2048x2048"),
])
def test_item06_implausible_npz_contents_are_refused(images, labels, message, tmp_path):
    base = drawings(8)
    images = {None: base, "inverted": ~base, "float255": base.astype(np.float32) * 255,
              "strings": np.full((2, 20, 3, 3), "a"),
              "wide": np.ones((2, 20, 3000, 1), bool)}[images]
    if labels is None:
        labels = np.repeat(np.arange(1, len(images) + 1)[:, None], 20, axis=1)
    path = write_npz(tmp_path / "odd.npz", images=images, labels=labels)
    with pytest.raises(ValueError) as caught:
        og.load(path, progress=False)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_item07_mse_loss_refuses_mismatched_shapes():
    params = sinusoid.init_params(jax.random.key(0))
    loss = mse_loss(mlp_apply)
    x, y = jnp.ones((4, 1)), jnp.ones((4, 1))
    assert np.isfinite(loss(params, (x, y)))
    with pytest.raises(ValueError, match=r"output \(4, 40\) does not match y \(4, 1\)"):
        loss(params[:-1], (x, y))                    # the last layer missing
    with pytest.raises(ValueError, match=r"output \(4, 1\) does not match y \(4, 3\)"):
        loss(params, (x, jnp.ones((4, 3))))          # y three columns wide


def test_item08_an_unwritable_cache_is_done_without(tmp_path, monkeypatch, fake_npz, capsys):
    blocked = tmp_path / "cache_is_a_file"
    blocked.write_text("x")
    monkeypatch.setenv("MINIMAML_CACHE", str(blocked))
    with pytest.warns(UserWarning, match=f"could not write the Omniglot cache {blocked}/"):
        data = og.load(fake_npz, progress=False)
    assert data.images.shape == (12, 20, 28, 28)
    monkeypatch.delenv(og.DATA_DIR_VARIABLE, raising=False)
    with pytest.raises(og.DataUnavailable) as caught:   # downloading needs the cache
        og.load(None, progress=False)
    assert str(caught.value).startswith(f"cannot download images_background.zip into the "
                                        f"cache folder {blocked} (")
    assert "MINIMAML_CACHE" in str(caught.value) and "\n" not in str(caught.value)
    assert og_cli.main(["--out", str(tmp_path / "run"), *TINY_FLAGS]) == 2
    assert len(error_lines(capsys.readouterr().err)) == 1


def test_item08_a_full_disk_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(npz, "atomic_write", full)
    line = one_error(sin_cli.main, [*SMALL_SINUSOID, "--out", tmp_path], capsys, status=1)
    assert line.startswith("error: ") and "maml_params.npz: No space left on device; free " \
        "some space, or write elsewhere (--out)" in line
    assert not (tmp_path / "metrics.json").exists()


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with a few bytes of data."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0,
                                                                0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, message", [(40000, "refused, too many pixels to decode "
                                                     "safely"),
                                            (3000, "a 3000x3000 image, larger than a drawing "
                                                   "can be")])
def test_item08_a_decompression_bomb_png_is_refused(width, message, tmp_path, capsys):
    folder = write_png_tree(tmp_path / "pngs", characters=2)
    bomb = folder / "Alphabet" / "character01" / "0001_01.png"
    bomb.write_bytes(bomb_png(width, width))
    with pytest.raises(ValueError, match=f"^{re.escape(str(bomb))}: {message}"):
        og.load(folder, progress=False)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("images_background/Alphabet/character01/0001_01.png", bomb_png(width, width))
    with pytest.raises(ValueError, match=f"^{re.escape(str(archive))}:images_background/"
                                         f"Alphabet/character01/0001_01.png: {message}"):
        og.load(archive, progress=False)
    line = one_error(og_cli.main, ["--data", archive, "--out", tmp_path / "run", *TINY_FLAGS],
                     capsys)
    assert line.startswith(f"error: --data: {archive}:") and message in line


def test_item08_no_network_is_one_line(tmp_path, monkeypatch, capsys):
    import pooch
    import requests

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Max retries exceeded (no network)")
    monkeypatch.setattr(pooch, "retrieve", offline)
    monkeypatch.delenv(og.DATA_DIR_VARIABLE, raising=False)
    line = one_error(og_cli.main, ["--out", tmp_path / "run", *TINY_FLAGS], capsys)
    assert line.startswith(f"error: could not download {og.BASE_URL}images_background.zip "
                           f"(ConnectionError); offline, put")


@pytest.mark.slow
def test_item09_omniglot_meta_test_divergence_is_reported(tmp_path, fake_npz, capsys):
    data = fake_omniglot()
    config = tiny_config(inner_steps=0, inner_lr=1e30)
    _, test_images = og.split_images(data, config)
    with pytest.raises(TrainingDiverged, match=r"fine-tuning diverged at meta-test on 4 of 4 "
                                               r"tasks, the weights becoming non-finite at step "
                                               r"\d; try a smaller learning rate "
                                               r"\(inner_lr=1e\+30"):
        og.evaluate(og.init_params(config), test_images, config)
    accuracies = og.evaluate(og.init_params(config), test_images, tiny_config())
    assert np.isfinite(accuracies).all()
    line = one_error(og_cli.main, ["--data", fake_npz, "--out", tmp_path, "--meta-steps", "2",
                                   "--inner-steps", "0", "--inner-lr", "1e30", *TINY_FLAGS],
                     capsys)
    assert "fine-tuning diverged at meta-test" in line and "smaller learning rate" in line
    assert not (tmp_path / "metrics.json").exists()


def test_item10_an_edited_png_of_the_same_size_is_read_again(tmp_path):
    folder = write_png_tree(tmp_path / "pngs", characters=2)
    first = og.load(folder, cache_dir=tmp_path / "cache", progress=False)
    one = folder / "Alphabet" / "character01" / "0001_01.png"
    other = folder / "Alphabet" / "character02" / "0002_01.png"
    before = one.stat().st_size
    one.write_bytes(other.read_bytes())              # another drawing, the same size
    assert one.stat().st_size == before
    again = og.load(folder, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(again.images[0, 0], first.images[1, 0])
    assert not np.array_equal(again.images[0, 0], first.images[0, 0])


@pytest.mark.parametrize("minutes, shown", [("nan", "nan"), ("-5", "-5.0"), ("inf", "inf")])
def test_item11_checkpoint_minutes_names_the_flag_and_the_typed_value(minutes, shown, tmp_path,
                                                                     capsys, no_training):
    line = one_error(og_cli.main, ["--checkpoint-minutes", minutes, "--out", tmp_path], capsys)
    assert line == f"error: --checkpoint-minutes must be a finite number >= 0; got {shown}"


def test_item12_a_huge_zip_member_is_refused_before_it_is_unpacked(tmp_path):
    archive = tmp_path / "zeros.zip"
    member = "images_background/Alphabet/character01/0001_01.png"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(member, "w", force_zip64=True) as f:
            block = bytes(1 << 20)
            for _ in range(300):                     # 300 MB of zeros
                f.write(block)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=f"^{re.escape(str(archive))}:{member}: 314,572,800 "
                                             f"bytes unpacked, more than a drawing's PNG can be"):
            og.load(archive, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB used to refuse it"


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p), "not a readable Omniglot npz: holds no arrays; an Omniglot npz "
                            "needs 'images' and 'labels'"),
    (lambda p: np.savez(p, images=np.ones((0, 20, 105, 105), bool),
                        labels=np.ones((0, 20))), "holds no drawings"),
    (lambda p: np.savez(p, images=drawings(2), labels=np.full((2, 20), np.nan)),
     "labels must be integer character ids >= 0; got nan at row 0, drawing 0"),
    (lambda p: p.write_text("just text"), "not an .npz file (numpy's zip of arrays)"),
])
def test_item13_npz_problems_name_the_file(make, message, tmp_path):
    path = tmp_path / "odd.npz"
    make(path)
    with pytest.raises(ValueError) as caught:
        og.load(path, progress=False)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_item13_npz_load_of_a_non_npz_says_so(tmp_path):
    path = tmp_path / "params.npz"
    path.write_text("just text")
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: not an .npz file"):
        npz.load(path)


def test_item13_finetune_curves_checks_task_chunk_and_the_number_of_tasks():
    params = sinusoid.init_params(jax.random.key(0))
    tasks = sinusoid.sample_tasks(jax.random.key(1), 4, 5, 5)
    with pytest.raises(ValueError, match=r"^task_chunk must be an integer >= 1; got -2$"):
        finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, 0.01, 2,
                        task_chunk=-2)
    empty = jax.tree.map(lambda a: a[:0], (tasks.support, tasks.query))
    with pytest.raises(ValueError, match=r"same number of tasks \(>= 1\).*got \[0\]"):
        finetune_curves(params, sinusoid.sine_loss, *empty, 0.01, 2)


def test_item13_the_playground_takes_numpy_numbers():
    from minimaml.checks import check_number
    from minimaml.widgets import playground
    assert check_number(np.float32(0.1), "inner_lr", 0.001, 0.1) == pytest.approx(0.1)
    assert playground(inner_lr=np.float32(0.1), shots=np.int64(5)) is not None
