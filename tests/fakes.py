"""Small made-up Omniglot data and helpers for the reliability tests (test_runs.py,
test_bad_input.py): files in the official formats, fast to read and to train on."""
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from minimaml import omniglot as og

REPO = pathlib.Path(__file__).resolve().parents[1]


def drawings(characters: int, seed: int = 0, side: int = 105) -> np.ndarray:
    """(characters, 20, side, side) bool, True = white background, a few ink strokes."""
    rng = np.random.default_rng(seed)
    images = np.ones((characters, og.DRAWINGS, side, side), bool)
    for c in range(characters):
        strokes = rng.integers(10, side - 30, size=(3, 2))
        for d in range(og.DRAWINGS):
            for y, x in strokes + rng.integers(-4, 5, size=(3, 2)):
                images[c, d, y:y + 20, x:x + 3] = False
                images[c, d, y:y + 3, x:x + 20] = False
    return images


def write_npz(path: pathlib.Path, characters: int = 12, seed: int = 0,
              images: np.ndarray | None = None, labels: np.ndarray | None = None) -> pathlib.Path:
    """An npz in the offline conversion's layout: images (C, 20, 105, 105), labels (C, 20)."""
    images = drawings(characters, seed) if images is None else images
    if labels is None:
        labels = np.repeat(np.arange(1, len(images) + 1)[:, None], og.DRAWINGS, axis=1)
    np.savez(path, images=images, labels=labels)
    return path


def png_bytes(background: np.ndarray) -> bytes:
    """An uncompressed PNG of one drawing (its size depends only on its shape)."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.where(background, 255, 0).astype(np.uint8)).save(
        buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def write_png_tree(folder: pathlib.Path, characters: int = 2, seed: int = 0) -> pathlib.Path:
    """``folder/Alphabet/characterNN/NNNN_DD.png``, as in the official archives."""
    for c, character in enumerate(drawings(characters, seed)):
        where = folder / "Alphabet" / f"character{c + 1:02d}"
        where.mkdir(parents=True)
        for d, drawing in enumerate(character):
            (where / f"{c + 1:04d}_{d + 1:02d}.png").write_bytes(png_bytes(drawing))
    return folder


def fake_omniglot(characters: int = 12, seed: int = 0) -> og.Omniglot:
    """Resized characters ready for training, without a file."""
    images = np.stack([np.stack([og.resize(d) for d in c]) for c in drawings(characters, seed)])
    return og.Omniglot(images, np.arange(1, characters + 1), np.array(["Alphabet"] * characters))


def tiny_config(**overrides) -> og.Config:
    """A config that trains in a second: 5-way 1-shot, 4 filters, 2 blocks."""
    settings = dict(meta_steps=2, meta_batch=2, filters=4, blocks=2, train_characters=6,
                    eval_tasks=4, steps_per_call=1, first_order=True, checkpoint_seconds=0.0)
    return og.paper_config(5, 1, **{**settings, **overrides})


TINY_FLAGS = ["--meta-batch", "2", "--filters", "4", "--train-characters", "6",
              "--eval-tasks", "4", "--steps-per-call", "1", "--first-order", "--no-progress"]


def python(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """A Python subprocess importing this checkout's minimaml."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([sys.executable, *args], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def error_lines(stderr: str) -> list[str]:
    """The non-empty lines of stderr (the CLIs print bad input as exactly one)."""
    return [line for line in stderr.splitlines() if line.strip()]


def data_or_skip(get):
    """``get()``, or skip (fail in CI) with DataUnavailable's one line."""
    try:
        return get()
    except og.DataUnavailable as err:
        if os.environ.get("CI"):
            pytest.fail(f"Omniglot test data missing in CI: {err}")
        pytest.skip(str(err))
