"""Omniglot few-shot classification (Section 5.2 of the paper) and its experiment.

Data: the official archives of Lake et al. (1,623 handwritten characters from 50
alphabets, 20 drawings each, 105x105 binary PNGs), downloaded with pooch and checked
against their sha256, or read from a local path (a directory, an official zip, or the
``.npz`` conversion). Each drawing is resized to 28x28 (PIL Lanczos), ink = 1.0 and
background = 0.0, and the result is cached as an npz in a user cache directory.

Splits (the paper's, after Santoro et al. 2016): characters are ordered by their
official id (1..1623, the ``NNNN`` of ``NNNN_DD.png``); ``np.random.default_rng(split_seed)
.permutation(1623)`` is drawn, its first 1,200 positions are the meta-training
characters and the remaining 423 the meta-test characters — irrespective of alphabet,
disjoint by construction. Classes are augmented with rotations by multiples of 90°:
every sampled character gets a random quarter-turn, applied to all its drawings in
that task.

Tasks: N-way K-shot with Q queries per class, sampled on device with ``jax.random``
(:func:`sample_tasks`): N distinct characters, each with its own rotation and K + Q
distinct drawings; label n goes to the n-th sampled character, so labels are a fresh
random permutation of the classes in every task.

BatchNorm uses each batch's statistics (:func:`minimaml.nets.batch_norm`), so a
prediction depends on the other images it is batched with. Our protocol, used in
training and testing alike: the support set goes through the net as one batch
(N·K images) and the query images in batches shaped like a training query batch
(Q_train images of each class). At test time the ``eval_queries`` queries per class
are split into ``eval_queries / queries`` such groups, each a separate forward pass.

Run the experiment with ``python -m minimaml.omniglot --ways 5 --shots 1 --out DIR``.
"""
import argparse
import dataclasses
import functools
import hashlib
import io
import json
import os
import pathlib
import re
import sys
import time
import warnings
import zipfile
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .checks import check_int
from .evaluate import finetune_curves, mean_ci95
from .maml import check_inner_lr, check_steps
from .nets import conv2d_im2col, conv2d_native, conv_apply, conv_init
from .train import meta_train

IMAGE_SIZE = 28
DRAWINGS = 20
NUM_CHARACTERS = 1623
CACHE_FORMAT = 1           # bump when the cached array's meaning changes

BASE_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
OFFICIAL_SHA256 = {
    "images_background.zip": "ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640",
    "images_evaluation.zip": "1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee",
    "images_background_small1.zip":
        "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
    "images_background_small2.zip":
        "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
}
# The offline .npz conversion shipped beside the project (pixel-identical to the PNGs).
NPZ_SHA256 = {
    "images_background.npz": "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
    "images_evaluation.npz": "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
}
FULL_ZIPS = ("images_background.zip", "images_evaluation.zip")
FULL_NPZS = ("images_background.npz", "images_evaluation.npz")
_PNG_NAME = re.compile(r"(?:^|/)([^/]+)/([^/]+)/(\d{4})_(\d{2})\.png$")


# ---------------------------------------------------------------------------
# Data: download, verify, read, resize, cache.

class Omniglot(NamedTuple):
    """Characters ordered by official id.

    images: (C, 20, 28, 28) float32 in [0, 1], ink = 1; ids: (C,) int official
    character ids; alphabets: (C,) str.
    """
    images: np.ndarray
    ids: np.ndarray
    alphabets: np.ndarray


def default_cache_dir():
    """``$MINIMAML_CACHE`` if set, else the OS user cache dir (e.g. ~/.cache/minimaml)."""
    import pooch
    return pathlib.Path(os.environ.get("MINIMAML_CACHE") or pooch.os_cache("minimaml"))


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path):
    """Return the file's sha256; raise ValueError if its name is an official file's and
    the hash is not that file's (corrupt, truncated or not the official file)."""
    path = pathlib.Path(path)
    digest = sha256_of(path)
    expected = {**OFFICIAL_SHA256, **NPZ_SHA256}.get(path.name)
    if expected is not None and digest != expected:
        raise ValueError(
            f"{path}: sha256 {digest} does not match the official {path.name} "
            f"({expected}); the file is corrupt, truncated or not the official one — "
            f"delete it and download it again")
    return digest


def download(name, cache_dir=None, progress=True):
    """Fetch one official archive into the cache dir with pooch (hash-checked); its path."""
    import pooch
    if name not in OFFICIAL_SHA256:
        raise ValueError(f"name must be one of {sorted(OFFICIAL_SHA256)}; got {name!r}")
    return pathlib.Path(pooch.retrieve(
        BASE_URL + name, known_hash="sha256:" + OFFICIAL_SHA256[name], fname=name,
        path=cache_dir or default_cache_dir(), progressbar=progress))


def resize(background):
    """A 105x105 drawing (bool or 0/255, True/255 = white background) -> (28, 28) float32
    with ink = 1.0, via PIL's Lanczos filter (as the official MAML preprocessing)."""
    from PIL import Image
    gray = np.where(np.asarray(background) != 0, 255, 0).astype(np.uint8)
    small = Image.fromarray(gray, mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
    return 1.0 - np.asarray(small, dtype=np.float32) / 255.0


def _assemble(drawings, source):
    """{(id, drawer): (28, 28)} + {id: alphabet} -> Omniglot, checking 20 drawings each."""
    images, alphabets = drawings
    ids = sorted({i for i, _ in images})
    if not ids:
        raise ValueError(f"{source}: no Omniglot drawings found (expected "
                         f"Alphabet/characterNN/NNNN_DD.png files)")
    out = np.zeros((len(ids), DRAWINGS, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for row, i in enumerate(ids):
        for d in range(DRAWINGS):
            if (i, d + 1) not in images:
                raise ValueError(f"{source}: character {i:04d} lacks drawing {d + 1:02d} "
                                 f"(every character needs {DRAWINGS})")
            out[row, d] = images[(i, d + 1)]
    return Omniglot(out, np.array(ids), np.array([alphabets[i] for i in ids]))


def _read_zip(path):
    """Read an official archive (``.../Alphabet/characterNN/NNNN_DD.png``) through PIL."""
    from PIL import Image
    images, alphabets = {}, {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                match = _PNG_NAME.search(member)
                if not match:
                    continue
                alphabet, _, char_id, drawer = match.groups()
                with Image.open(io.BytesIO(archive.read(member))) as png:
                    images[int(char_id), int(drawer)] = resize(np.asarray(png.convert("L")))
                alphabets[int(char_id)] = alphabet
    except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as err:
        raise ValueError(f"{path}: not a readable zip archive of PNGs (truncated or "
                         f"corrupt?): {err}") from err
    return _assemble((images, alphabets), path)


def _read_png_dir(path):
    from PIL import Image
    images, alphabets = {}, {}
    for png_path in sorted(pathlib.Path(path).rglob("*.png")):
        match = _PNG_NAME.search(png_path.as_posix())
        if not match:
            continue
        alphabet, _, char_id, drawer = match.groups()
        try:
            with Image.open(png_path) as png:
                images[int(char_id), int(drawer)] = resize(np.asarray(png.convert("L")))
        except OSError as err:
            raise ValueError(f"{png_path}: not a readable PNG: {err}") from err
        alphabets[int(char_id)] = alphabet
    return _assemble((images, alphabets), path)


def _read_npz(path):
    """The offline conversion: ``images`` (C, 20, 105, 105) bool stored as 0/255 bytes,
    ``labels`` (C, 20) character ids; alphabets from ``id_to_alphabet.json`` beside it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = np.asarray(data["images"]).view(np.uint8)
            labels = np.asarray(data["labels"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: not a readable Omniglot npz with 'images' and "
                         f"'labels': {err}") from err
    if raw.ndim != 4 or raw.shape[1] != DRAWINGS or labels.shape != raw.shape[:2]:
        raise ValueError(f"{path}: expected images (C, {DRAWINGS}, 105, 105) and labels "
                         f"(C, {DRAWINGS}); got {raw.shape} and {labels.shape}")
    if labels.min() == 0:
        # 0-based rows of this file (as the shipped files have, despite their README):
        # background rows are ids 1..964, evaluation rows ids 965..1623.
        offset = 964 if pathlib.Path(path).name.startswith("images_evaluation") else 0
        labels = labels + 1 + offset
    names_file = pathlib.Path(path).with_name("id_to_alphabet.json")
    names = json.loads(names_file.read_text()) if names_file.exists() else {}
    images, alphabets = {}, {}
    for c in range(raw.shape[0]):
        for d in range(DRAWINGS):
            images[int(labels[c, d]), d + 1] = resize(raw[c, d])
        alphabets[int(labels[c, 0])] = names.get(f"{int(labels[c, 0]):04d}", "unknown")
    return _assemble((images, alphabets), path)


def _resolve(source):
    """A source -> list of files/dirs to read, in order."""
    if source is None:
        return None
    if isinstance(source, (list, tuple)):
        return [pathlib.Path(s) for s in source]
    path = pathlib.Path(source)
    if not path.exists():
        raise FileNotFoundError(f"Omniglot data not found: {path} does not exist (give a "
                                f"directory, an official .zip or the .npz conversion)")
    if path.is_dir():
        for names in (FULL_NPZS, FULL_ZIPS):
            if all((path / n).exists() for n in names):
                return [path / n for n in names]
        if any(path.rglob("*.png")):
            return [path]
        raise FileNotFoundError(
            f"{path}: holds neither {' + '.join(FULL_NPZS)}, nor {' + '.join(FULL_ZIPS)}, "
            f"nor Omniglot PNGs")
    return [path]


def _fingerprint(path):
    if path.is_dir():   # a directory of PNGs: names and sizes
        h = hashlib.sha256()
        for p in sorted(path.rglob("*.png")):
            h.update(f"{p.relative_to(path)}:{p.stat().st_size};".encode())
        return h.hexdigest()
    return verify(path)


def _read(path):
    if not path.exists():
        raise FileNotFoundError(f"Omniglot data not found: {path} does not exist")
    if path.is_dir():
        return _read_png_dir(path)
    if path.suffix == ".zip":
        return _read_zip(path)
    if path.suffix == ".npz":
        return _read_npz(path)
    raise ValueError(f"{path}: unsupported file type {path.suffix!r} "
                     f"(allowed: a directory, .zip, .npz)")


def _load_cache(path, key):
    """The cached Omniglot, or None if missing, unreadable or not for this source."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            ok = (str(data["key"]) == key and int(data["format"]) == CACHE_FORMAT)
            images, ids, alphabets = data["images"], data["ids"], data["alphabets"]
        if not ok:
            raise ValueError("cache key mismatch")
        if (images.dtype != np.float32 or images.shape[1:] != (DRAWINGS, IMAGE_SIZE, IMAGE_SIZE)
                or ids.shape != images.shape[:1] or alphabets.shape != ids.shape
                or not np.all(np.isfinite(images))):
            raise ValueError("unexpected arrays")
        return Omniglot(images, ids, alphabets)
    except Exception as err:   # anything wrong: rebuild rather than trust it
        warnings.warn(f"ignoring the bad Omniglot cache {path} ({err}); rebuilding it")
        return None


def load(source=None, cache_dir=None, progress=True):
    """The Omniglot characters as 28x28 arrays (see :class:`Omniglot`).

    Args:
      source: None (download the two official archives with pooch, hash-checked), a
        directory (holding ``images_background.npz`` + ``images_evaluation.npz``, or
        the two official zips, or an extracted tree of PNGs), one official ``.zip``,
        one ``.npz`` conversion, or a list of such files (concatenated).
      cache_dir: where downloads and the resized-array cache live (default
        :func:`default_cache_dir`).

    Raises:
      FileNotFoundError: the path does not exist or holds no Omniglot data.
      ValueError: a hash mismatch, a truncated/corrupt archive, or missing drawings;
        the message names the file.
    """
    cache_dir = pathlib.Path(cache_dir or default_cache_dir())
    paths = _resolve(source)
    if paths is None:
        paths = [download(name, cache_dir, progress) for name in FULL_ZIPS]
    key = hashlib.sha256(":".join(_fingerprint(p) for p in paths).encode()).hexdigest()
    cache_file = cache_dir / f"omniglot{IMAGE_SIZE}_{key[:16]}.npz"
    cached = _load_cache(cache_file, key)
    if cached is not None:
        return cached
    parts = [_read(p) for p in paths]
    data = Omniglot(*(np.concatenate(arrays) for arrays in zip(*parts)))
    if len(np.unique(data.ids)) != len(data.ids):
        raise ValueError(f"{[str(p) for p in paths]}: the sources repeat character ids")
    order = np.argsort(data.ids)
    data = Omniglot(*(a[order] for a in data))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, images=data.images, ids=data.ids,
                        alphabets=data.alphabets.astype(str), key=np.array(key),
                        format=np.array(CACHE_FORMAT))
    os.replace(tmp, cache_file)
    return data


# ---------------------------------------------------------------------------
# Splits and the task sampler.

def split_characters(num_characters, num_train=1200, seed=0):
    """Disjoint (train, test) index arrays into the characters (sorted by id).

    ``np.random.default_rng(seed).permutation(num_characters)``: the first
    ``num_train`` are meta-training characters, the rest meta-test. Each is returned
    sorted.
    """
    check_int(num_characters, "num_characters", 2)
    if isinstance(num_train, bool) or int(num_train) != num_train or not (
            1 <= num_train < num_characters):
        raise ValueError(f"num_train must be an integer in [1, {num_characters - 1}] "
                         f"(characters: {num_characters}); got {num_train!r}")
    order = np.random.default_rng(seed).permutation(num_characters)
    return np.sort(order[:num_train]), np.sort(order[num_train:])


class OmniglotTasks(NamedTuple):
    """A batch of N-way K-shot tasks; the leading axis indexes tasks.

    support_x: (T, N*K, 28, 28, 1), support_y: (T, N*K) int32 labels in [0, N);
    query_x: (T, N*Q, 28, 28, 1), query_y: (T, N*Q); class-major order (the K
    support images of label 0 first). characters: (T, N) rows of the image array
    (label n is character ``characters[:, n]``); rotations: (T, N) quarter turns;
    drawers: (T, N, K+Q) drawings used, the first K for support.
    """
    support_x: jax.Array
    support_y: jax.Array
    query_x: jax.Array
    query_y: jax.Array
    characters: jax.Array
    rotations: jax.Array
    drawers: jax.Array

    @property
    def support(self):
        return self.support_x, self.support_y

    @property
    def query(self):
        return self.query_x, self.query_y


def check_task_shape(images, ways, shots, queries):
    check_int(ways, "ways (N)", 2)
    check_int(shots, "shots (K)", 1)
    check_int(queries, "queries (per class)", 1)
    num_chars, drawings = images.shape[:2]
    if ways > num_chars:
        raise ValueError(f"ways (N) must be at most the {num_chars} characters available; "
                         f"got {ways}")
    if shots + queries > drawings:
        raise ValueError(f"shots + queries must be at most the {drawings} drawings per "
                         f"character; got {shots} + {queries}")


def sample_tasks(key, images, num_tasks, ways, shots, queries=1):
    """Draw ``num_tasks`` N-way K-shot tasks from ``images`` (C, D, H, W), all at once.

    Per task: N distinct characters (a random order, which is the label permutation),
    a random quarter-turn each, and K + Q distinct drawings of each (K support, Q query).
    Pure ``jax.random`` and gathers: jit-able, no Python loop over tasks.
    """
    check_int(num_tasks, "num_tasks", 1)
    check_task_shape(images, ways, shots, queries)
    num_chars, drawings = images.shape[:2]
    k_char, k_rot, k_draw = jax.random.split(key, 3)
    characters = jax.vmap(lambda k: jax.random.choice(k, num_chars, (ways,), replace=False))(
        jax.random.split(k_char, num_tasks)).astype(jnp.int32)
    rotations = jax.random.randint(k_rot, (num_tasks, ways), 0, 4, dtype=jnp.int32)
    drawers = jnp.argsort(jax.random.uniform(k_draw, (num_tasks, ways, drawings)),
                          axis=-1)[..., :shots + queries].astype(jnp.int32)
    x = jnp.asarray(images)[characters[..., None], drawers]        # (T, N, K+Q, H, W)
    turned = jnp.stack([jnp.rot90(x, k, axes=(-2, -1)) for k in range(4)])
    x = turned[rotations, jnp.arange(num_tasks)[:, None], jnp.arange(ways)[None, :]]
    x = x[..., None].astype(jnp.float32)
    y = jnp.broadcast_to(jnp.arange(ways, dtype=jnp.int32)[None, :, None],
                         x.shape[:3])
    h, w = x.shape[-3:-1]
    support_x = x[:, :, :shots].reshape(num_tasks, ways * shots, h, w, 1)
    query_x = x[:, :, shots:].reshape(num_tasks, ways * queries, h, w, 1)
    return OmniglotTasks(support_x, y[:, :, :shots].reshape(num_tasks, -1), query_x,
                         y[:, :, shots:].reshape(num_tasks, -1), characters, rotations,
                         drawers)


def task_sampler(images, num_tasks, ways, shots, queries=1):
    """``key -> (support, query)``, the form :func:`minimaml.train.optimize` wants."""
    check_int(num_tasks, "meta_batch", 1)
    check_task_shape(images, ways, shots, queries)

    def sample(key):
        tasks = sample_tasks(key, images, num_tasks, ways, shots, queries)
        return tasks.support, tasks.query
    return sample


# ---------------------------------------------------------------------------
# Loss, model and the meta-test protocol.

def cross_entropy_loss(apply_fn):
    """``loss_fn(params, (x, y))``: mean softmax cross-entropy, y int labels (B,)."""
    def loss_fn(params, batch):
        x, y = batch
        logits = apply_fn(params, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))
    return loss_fn


def classifier(conv=None):
    """``(apply_fn, loss_fn)`` of the conv net; ``conv`` as in :func:`conv_apply`."""
    apply_fn = partial(conv_apply, conv=conv)
    return apply_fn, cross_entropy_loss(apply_fn)


def query_groups(query_x, query_y, ways, group_queries):
    """Split one task's class-major query set into batches of ``group_queries`` per class.

    query_x: (N*Q, H, W, 1) -> (Q/g, N*g, H, W, 1); query_y likewise (Q/g, N*g).
    """
    q = query_y.shape[0] // ways
    groups = q // group_queries

    def regroup(a):
        a = a.reshape(ways, groups, group_queries, *a.shape[1:])
        return jnp.swapaxes(a, 0, 1).reshape(groups, ways * group_queries, *a.shape[3:])
    return regroup(query_x), regroup(query_y)


def task_accuracies(params, tasks, ways, inner_lr, steps, group_queries=1, conv=None,
                    task_chunk=50):
    """Accuracy of each task after 0..steps fine-tuning steps: (T, steps+1) numpy.

    Fine-tunes θ on each task's support set (one batch) with SGD, and classifies its
    queries in groups of ``group_queries`` per class (each group one forward pass,
    BatchNorm over that group), as in training.
    """
    loss_fn, accuracy = _grouped_accuracy(ways, group_queries, conv)
    return finetune_curves(loss_fn, params, tasks.support, tasks.query, inner_lr, steps,
                           metric_fn=accuracy, task_chunk=task_chunk)


@functools.lru_cache(maxsize=16)
def _grouped_accuracy(ways, group_queries, conv):
    """``(loss_fn, accuracy(params, query))``, built once per setting so that
    :func:`finetune_curves` compiles once (evaluating many checkpoints)."""
    apply_fn, loss_fn = classifier(conv)

    def accuracy(params, query):
        gx, gy = query_groups(*query, ways, group_queries)
        logits = jax.vmap(apply_fn, in_axes=(None, 0))(params, gx)
        return jnp.mean(jnp.argmax(logits, -1) == gy)
    return loss_fn, accuracy


# ---------------------------------------------------------------------------
# The experiment.

@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's settings; the defaults are the paper's 5-way 1-shot config."""
    ways: int = 5
    shots: int = 1
    queries: int = 1             # query images per class in a training task
    meta_batch: int = 32
    inner_steps: int = 1
    inner_lr: float = 0.4        # α
    eval_inner_steps: int = 3
    meta_lr: float = 1e-3        # β (Adam)
    meta_steps: int = 60_000
    first_order: bool = False
    remat: bool = False
    filters: int = 64
    blocks: int = 4
    train_characters: int = 1200
    split_seed: int = 0
    seed: int = 0
    eval_tasks: int = 600
    eval_queries: int = 15       # per class at meta-test, in groups of ``queries``
    eval_every: int = 0          # meta-steps between test evaluations (0: at the end only)
    steps_per_call: int = 100
    checkpoint_seconds: float = 300.0
    max_train_seconds: float = 0.0   # stop early after this much training (0: no limit)

    def validate(self, images=None):
        for name in ("shots", "queries", "meta_batch", "meta_steps", "filters", "blocks",
                     "train_characters", "eval_tasks", "eval_queries", "steps_per_call"):
            check_int(getattr(self, name), name, 1)
        check_int(self.ways, "ways", 2)
        check_int(self.eval_every, "eval_every", 0)
        if not self.max_train_seconds >= 0:
            raise ValueError(f"max_train_seconds must be >= 0; got {self.max_train_seconds!r}")
        check_steps(self.inner_steps, "inner_steps")
        check_steps(self.eval_inner_steps, "eval_inner_steps")
        check_inner_lr(self.inner_lr, "inner_lr")
        check_inner_lr(self.meta_lr, "meta_lr")
        if self.eval_queries % self.queries:
            raise ValueError(f"eval_queries must be a multiple of queries={self.queries} "
                             f"(test queries go through the net in training-shaped "
                             f"groups); got {self.eval_queries}")
        if self.shots + max(self.queries, self.eval_queries) > DRAWINGS:
            raise ValueError(f"shots + queries and shots + eval_queries must be at most "
                             f"{DRAWINGS}; got shots={self.shots}, queries={self.queries}, "
                             f"eval_queries={self.eval_queries}")
        return self


def paper_config(ways=5, shots=1, **overrides):
    """The paper's hyperparameters: 5-way — 1 step at α=0.4, 3 at test, meta-batch 32;
    20-way — 5 steps at α=0.1 (5 at test), meta-batch 16. Adam 1e-3, 60,000 steps."""
    if ways == 20:
        base = dict(inner_steps=5, inner_lr=0.1, eval_inner_steps=5, meta_batch=16)
    else:
        base = dict(inner_steps=1, inner_lr=0.4, eval_inner_steps=3, meta_batch=32)
    return Config(ways=ways, shots=shots, **{**base, **overrides})


# Fields whose change makes a checkpoint belong to a different run.
_RUN_FIELDS = ("ways", "shots", "queries", "meta_batch", "inner_steps", "inner_lr", "meta_lr",
               "first_order", "filters", "blocks", "train_characters", "split_seed", "seed")


def split_images(data, config):
    """(train_images, test_images) device arrays (C, 20, 28, 28) for ``config``'s split."""
    train_idx, test_idx = split_characters(len(data.ids), config.train_characters,
                                           config.split_seed)
    return jnp.asarray(data.images[train_idx]), jnp.asarray(data.images[test_idx])


def init_params(config):
    return conv_init(jax.random.key(config.seed), config.ways, filters=config.filters,
                     blocks=config.blocks)


def evaluate(params, test_images, config, conv=None):
    """Meta-test: ``eval_tasks`` fixed fresh tasks, ``eval_inner_steps`` SGD steps at α.

    Returns per-task accuracy after 0..eval_inner_steps steps, (T, steps+1) numpy.
    The tasks are the same for every call with the same config (seeded apart from
    training), so checkpoints can be compared.
    """
    key = jax.random.fold_in(jax.random.key(config.seed), 10_000)
    tasks = sample_tasks(key, test_images, config.eval_tasks, config.ways, config.shots,
                         config.eval_queries)
    return task_accuracies(params, tasks, config.ways, config.inner_lr,
                           config.eval_inner_steps, config.queries, conv)


def save_checkpoint(path, step, params, opt_state, state):
    """Write params, optimizer state and a JSON state dict atomically as one npz."""
    arrays = {f"param_{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(params))}
    arrays.update({f"opt_{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(opt_state))})
    path = pathlib.Path(path)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, step=np.array(step), state=np.array(json.dumps(state)), **arrays)
    os.replace(tmp, path)


def load_checkpoint(path, params_like, opt_state_like):
    """(step, params, opt_state, state) from :func:`save_checkpoint`, shaped like the
    given templates."""
    try:
        with np.load(path, allow_pickle=False) as data:
            def fill(template, prefix):
                leaves, treedef = jax.tree.flatten(template)
                new = [jnp.asarray(data[f"{prefix}_{i}"], dtype=jnp.asarray(leaf).dtype)
                       for i, leaf in enumerate(leaves)]
                for old, loaded in zip(leaves, new):
                    if jnp.shape(old) != loaded.shape:
                        raise ValueError(f"shape {loaded.shape} != {jnp.shape(old)}")
                return jax.tree.unflatten(treedef, new)
            return (int(data["step"]), fill(params_like, "param"),
                    fill(opt_state_like, "opt"), json.loads(str(data["state"])))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: not a usable checkpoint for this config ({err}); "
                         f"delete it or choose another --out") from err


def train(config, data, out_dir=None, progress=True, conv=None, log=None):
    """Meta-train the conv net with MAML on ``data``'s training characters.

    With ``out_dir``, a checkpoint (``checkpoint.npz``) is written every
    ``config.checkpoint_seconds`` and at the end, and a run found there is resumed
    exactly (same tasks, same Adam state). With ``config.eval_every``, the test
    accuracy is measured every so many steps (fixed test tasks) and logged with the
    training wall time so far.

    With ``config.max_train_seconds`` training stops at the first chunk boundary past
    that much training time (a checkpoint is written, the run can be resumed).

    Returns ``(params, history)``: history holds ``steps`` (done), ``losses`` (per step),
    ``train_seconds`` (training only, compile included, evaluation excluded) and
    ``evals`` (list of {step, train_seconds, accuracy, ci95}).
    """
    import optax
    from tqdm.auto import tqdm

    config.validate()
    train_images, test_images = split_images(data, config)
    _, loss_fn = classifier(conv)
    params = init_params(config)
    opt_state = optax.adam(config.meta_lr).init(params)
    state = {"train_seconds": 0.0, "losses": [], "evals": [],
             "config": dataclasses.asdict(config)}
    start_step = 0
    ckpt = pathlib.Path(out_dir) / "checkpoint.npz" if out_dir is not None else None
    if ckpt is not None and ckpt.exists():
        start_step, params, opt_state, state = load_checkpoint(ckpt, params, opt_state)
        saved = state["config"]
        changed = [f for f in _RUN_FIELDS if saved.get(f) != getattr(config, f)]
        if changed:
            raise ValueError(f"{ckpt} was written with another config ({', '.join(changed)} "
                             f"differ); use another --out or the same settings")
        state["config"] = dataclasses.asdict(config)
        if log:
            log(f"resuming from {ckpt} at step {start_step}")
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)

    sampler = task_sampler(train_images, config.meta_batch, config.ways, config.shots,
                           config.queries)
    bar = tqdm(total=config.meta_steps * config.meta_batch,
               initial=start_step * config.meta_batch, unit="task", unit_scale=True,
               desc=f"MAML {config.ways}-way {config.shots}-shot", disable=not progress,
               dynamic_ncols=True)
    marks = {"last": time.perf_counter(), "saved": time.perf_counter()}
    stopped = {}

    def record_eval(step, p):
        acc = evaluate(p, test_images, config, conv)[:, -1]
        mean, ci = mean_ci95(acc)
        entry = {"step": step, "train_seconds": round(state["train_seconds"], 2),
                 "accuracy": float(mean), "ci95": float(ci)}
        state["evals"].append(entry)
        if log:
            log(json.dumps(entry))
        return entry

    def on_chunk(step, p, o, losses):
        now = time.perf_counter()
        state["train_seconds"] += now - marks["last"]
        state["losses"].extend(float(v) for v in losses)
        bar.update(len(losses) * config.meta_batch)
        bar.set_postfix(loss=f"{np.mean(losses[-100:]):.3f}")
        if config.eval_every and step % config.eval_every == 0 and step < config.meta_steps:
            record_eval(step, p)
        time_up = 0 < config.max_train_seconds <= state["train_seconds"]
        if ckpt is not None and (now - marks["saved"] >= config.checkpoint_seconds
                                 or step == config.meta_steps or time_up):
            save_checkpoint(ckpt, step, p, o, state)
            marks["saved"] = time.perf_counter()
        marks["last"] = time.perf_counter()
        if time_up and step < config.meta_steps:
            stopped.update(step=step, params=p, opt_state=o)
            raise _TimeUp

    steps_done = start_step
    try:
        if start_step < config.meta_steps:
            steps_done = config.meta_steps
            params, opt_state, _ = meta_train(
                loss_fn, params, sampler, jax.random.fold_in(jax.random.key(config.seed), 1),
                meta_steps=config.meta_steps, inner_lr=config.inner_lr,
                inner_steps=config.inner_steps, first_order=config.first_order,
                meta_lr=config.meta_lr, remat=config.remat, opt_state=opt_state,
                start_step=start_step, steps_per_call=config.steps_per_call,
                on_chunk=on_chunk, progress=False)
    except _TimeUp:
        steps_done, params, opt_state = stopped["step"], stopped["params"], stopped["opt_state"]
        if log:
            log(f"stopped after {state['train_seconds']:.0f} s of training at step "
                f"{steps_done} (max_train_seconds={config.max_train_seconds})")
    finally:
        bar.close()
    state["steps"] = steps_done
    if not state["evals"] or state["evals"][-1]["step"] != steps_done:
        record_eval(steps_done, params)
        if ckpt is not None:
            save_checkpoint(ckpt, steps_done, params, opt_state, state)
    return params, state


class _TimeUp(Exception):
    """Raised inside the training callback when ``max_train_seconds`` has passed."""


def plot(history, config, path=None):
    """Learning curve: training query loss (moving mean) and test accuracy vs step."""
    import matplotlib
    import matplotlib.pyplot as plt
    if path is not None:
        matplotlib.use("Agg")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    losses = np.asarray(history["losses"])
    window = max(1, len(losses) // 100)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax_loss.plot(np.arange(len(smooth)) + window, smooth)
    ax_loss.set_xlabel("meta-training step")
    ax_loss.set_ylabel("query loss after adaptation (moving mean)")
    ax_loss.set_title(f"{config.ways}-way {config.shots}-shot MAML training")
    evals = history["evals"]
    ax_acc.errorbar([e["step"] for e in evals], [100 * e["accuracy"] for e in evals],
                    yerr=[100 * e["ci95"] for e in evals], fmt="o-", capsize=3)
    ax_acc.axhline(100 / config.ways, color="gray", ls=":", label="chance")
    ax_acc.set_xlabel("meta-training step")
    ax_acc.set_ylabel(f"test accuracy, % ({config.eval_tasks} tasks, 95% CI)")
    ax_acc.set_title(f"meta-test after {config.eval_inner_steps} steps")
    ax_acc.legend()
    if path is not None:
        fig.savefig(path, dpi=80)
        plt.close(fig)
    return fig


def run(config, data, out_dir=None, progress=True, conv=None, log=None):
    """Train, meta-test and (with ``out_dir``) write metrics.json and learning_curve.png."""
    params, history = train(config, data, out_dir, progress, conv, log)
    final = history["evals"][-1]
    metrics = {
        "test_accuracy": {"mean": final["accuracy"], "ci95": final["ci95"],
                          "tasks": config.eval_tasks, "steps": config.eval_inner_steps},
        "config": dataclasses.asdict(config),
        "train_seconds": history["train_seconds"],
        "meta_steps": history["steps"],
        "evals": history["evals"],
        "versions": {"jax": jax.__version__, "backend": jax.default_backend(),
                     "device": str(jax.devices()[0])},
    }
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        plot(history, config, out / "learning_curve.png")
    return params, metrics, history


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m minimaml.omniglot",
        description="MAML few-shot classification on Omniglot (defaults: the paper's "
                    "hyperparameters for the chosen --ways).")
    p.add_argument("--ways", "-N", type=int, default=5)
    p.add_argument("--shots", "-K", type=int, default=1)
    p.add_argument("--meta-steps", type=int, default=60_000)
    p.add_argument("--data", default=None,
                   help="local directory, official .zip or .npz (default: download)")
    p.add_argument("--out", default="runs/omniglot", help="output directory")
    p.add_argument("--first-order", action="store_true", help="first-order MAML")
    p.add_argument("--remat", action="store_true",
                   help="nested jax.checkpoint of the inner steps (less memory for many steps)")
    for flag, kind, what in (("--meta-batch", int, "tasks per meta-step"),
                             ("--inner-steps", int, "SGD steps in training"),
                             ("--inner-lr", float, "α"),
                             ("--eval-inner-steps", int, "SGD steps at meta-test"),
                             ("--meta-lr", float, "β (Adam)"),
                             ("--queries", int, "query images per class in training"),
                             ("--eval-queries", int, "query images per class at test"),
                             ("--eval-tasks", int, "meta-test tasks"),
                             ("--eval-every", int, "steps between test evaluations"),
                             ("--filters", int, "conv filters per layer"),
                             ("--train-characters", int, "characters for meta-training"),
                             ("--steps-per-call", int, "meta-steps per jitted call"),
                             ("--seed", int, "seed"),
                             ("--checkpoint-minutes", float, "minutes between checkpoints"),
                             ("--max-minutes", float, "stop training after this long")):
        p.add_argument(flag, type=kind, default=None, help=f"{what} (default: paper)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    overrides = {name: getattr(args, name) for name in (
        "meta_batch", "inner_steps", "inner_lr", "eval_inner_steps", "meta_lr", "queries",
        "eval_queries", "eval_tasks", "eval_every", "filters", "train_characters",
        "steps_per_call", "seed") if getattr(args, name) is not None}
    if args.checkpoint_minutes is not None:
        overrides["checkpoint_seconds"] = 60 * args.checkpoint_minutes
    if args.max_minutes is not None:
        overrides["max_train_seconds"] = 60 * args.max_minutes
    config = paper_config(args.ways, args.shots, meta_steps=args.meta_steps,
                          first_order=args.first_order, remat=args.remat, **overrides)
    return config, args


def main(argv=None):
    from .train import TrainingDiverged
    config, args = parse_args(argv)
    try:
        config.validate()
        data = load(args.data, progress=not args.no_progress)
        _, metrics, _ = run(config, data, args.out, progress=not args.no_progress,
                            log=lambda m: print(m, flush=True))
    except (ValueError, FileNotFoundError, TrainingDiverged) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    acc = metrics["test_accuracy"]
    print(f"trained {metrics['meta_steps']} meta-steps in {metrics['train_seconds']:.1f} s; "
          f"test accuracy {100 * acc['mean']:.2f} ± {100 * acc['ci95']:.2f}% "
          f"({config.eval_tasks} tasks, {config.ways}-way {config.shots}-shot); "
          f"wrote {args.out}/metrics.json and {args.out}/learning_curve.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
