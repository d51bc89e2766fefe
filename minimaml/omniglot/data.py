"""Omniglot data: download, verify, read (:mod:`.readers`), cache.

The official archives of Lake et al. (1,623 handwritten characters from 50 alphabets,
20 drawings each, 105x105 binary PNGs), downloaded with pooch and checked against their
sha256, or read from a local path (a directory, an official zip, or the ``.npz``
conversion). Each drawing is resized to 28x28 (PIL Lanczos), ink = 1.0 and background =
0.0, and the result is cached as an npz in a user cache directory (keyed by the
files' content; an unwritable cache is warned about and done without).

Where the data is found, in order: the ``source`` argument (the CLI's ``--data``), the
directory named by ``$MINIMAML_OMNIGLOT_DIR``, else the download cache (downloading the
two official archives on first use). pooch and Pillow come with the ``omniglot`` extra.
"""
import hashlib
import os
import pathlib
import tempfile
import warnings
from typing import NamedTuple

import numpy as np

from .. import npz
from .readers import DRAWINGS, IMAGE_SIZE, read_npz, read_png_dir, read_zip, resize  # noqa: F401

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


def default_cache_dir() -> pathlib.Path:
    """``$MINIMAML_CACHE`` if set, else the OS user cache dir (e.g. ~/.cache/minimaml)."""
    if os.environ.get("MINIMAML_CACHE"):
        return pathlib.Path(os.environ["MINIMAML_CACHE"])
    import pooch   # the omniglot extra; not needed when the cache is named
    return pathlib.Path(pooch.os_cache("minimaml"))


def sha256_of(path: os.PathLike) -> str:
    """The file's sha256 as a hex string."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: os.PathLike) -> str:
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


DATA_DIR_VARIABLE = "MINIMAML_OMNIGLOT_DIR"


class DataUnavailable(FileNotFoundError):
    """The data is neither given, nor in ``$MINIMAML_OMNIGLOT_DIR``, nor downloadable."""


def download(name: str, cache_dir: os.PathLike | None = None,
             progress: bool = True) -> pathlib.Path:
    """Fetch one official archive into the cache dir with pooch (hash-checked); its path.

    Raises DataUnavailable, in one line naming the address, the variable and where to
    put the files, when the download fails (no network, server error).
    """
    import pooch
    if name not in OFFICIAL_SHA256:
        raise ValueError(f"name must be one of {sorted(OFFICIAL_SHA256)}; got {name!r}")
    cache_dir = pathlib.Path(cache_dir or default_cache_dir())
    problem = _unwritable(cache_dir)
    if problem:
        raise DataUnavailable(
            f"cannot download {name} into the cache folder {cache_dir} ({problem}); set "
            f"MINIMAML_CACHE to a folder you may write to, or put {' and '.join(FULL_ZIPS)} "
            f"in a folder and set {DATA_DIR_VARIABLE} to it (or pass it as --data / source)")
    try:
        return pathlib.Path(pooch.retrieve(
            BASE_URL + name, known_hash="sha256:" + OFFICIAL_SHA256[name], fname=name,
            path=cache_dir, progressbar=progress))
    except ValueError:
        raise   # a hash mismatch: pooch names the file
    except Exception as err:  # requests/urllib3 errors have no common base worth naming
        raise DataUnavailable(
            f"could not download {BASE_URL + name} ({type(err).__name__}); offline, put "
            f"{' and '.join(FULL_ZIPS)} (or {' and '.join(FULL_NPZS)}) in a directory and "
            f"set {DATA_DIR_VARIABLE} to it, or pass that directory as --data / source"
        ) from None


def data_dir() -> pathlib.Path | None:
    """The directory named by ``$MINIMAML_OMNIGLOT_DIR``, or None when it is not set."""
    value = os.environ.get(DATA_DIR_VARIABLE)
    return pathlib.Path(value) if value else None


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


def _unwritable(folder: pathlib.Path) -> str | None:
    """Why ``folder`` cannot be made or written to, or None when it can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def _fingerprint(path):
    if path.is_dir():   # a directory of PNGs: every file's name and content
        h = hashlib.sha256()
        for p in sorted(path.rglob("*.png")):
            h.update(f"{p.relative_to(path).as_posix()}:{sha256_of(p)};".encode())
        return h.hexdigest()
    return verify(path)


def content_sha256(data: Omniglot) -> str:
    """The sha256 of the characters' arrays (images, ids), whatever file they came from:
    what a checkpoint records to know its data again."""
    digest = hashlib.sha256()
    for array in (data.images, data.ids):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.data)
    return digest.hexdigest()


def _read(path):
    if not path.exists():
        raise FileNotFoundError(f"Omniglot data not found: {path} does not exist")
    if path.is_dir():
        return read_png_dir(path)
    if path.suffix == ".zip":
        return read_zip(path)
    if path.suffix == ".npz":
        return read_npz(path)
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


def load(source: os.PathLike | str | list | None = None, cache_dir: os.PathLike | None = None,
         progress: bool = True) -> Omniglot:
    """The Omniglot characters as 28x28 arrays (see :class:`Omniglot`).

    Args:
      source: None (``$MINIMAML_OMNIGLOT_DIR`` if set, else download the two official
        archives with pooch, hash-checked, into the cache), a directory (holding ``images_background.npz`` + ``images_evaluation.npz``, or
        the two official zips, or an extracted tree of PNGs), one official ``.zip``,
        one ``.npz`` conversion, or a list of such files (concatenated).
      cache_dir: where downloads and the resized-array cache live (default
        :func:`default_cache_dir`).

    Raises:
      FileNotFoundError: the path does not exist or holds no Omniglot data
        (DataUnavailable: no source, no variable, and the download failed).
      ValueError: a hash mismatch, a truncated/corrupt archive, or missing drawings;
        the message names the file.
    """
    cache_dir = pathlib.Path(cache_dir or default_cache_dir())
    if cache_dir.is_dir():
        npz.remove_stale_temp_files(cache_dir)    # left by killed processes
    paths = _resolve(source if source is not None else data_dir())
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
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        npz.atomic_write(cache_file, lambda f: np.savez_compressed(
            f, images=data.images, ids=data.ids, alphabets=data.alphabets.astype(str),
            key=np.array(key), format=np.array(CACHE_FORMAT)))
    except OSError as err:
        warnings.warn(f"could not write the Omniglot cache {cache_file} "
                      f"({err.strerror or err}); going on without it (set MINIMAML_CACHE to "
                      f"a writable folder to keep the resized arrays)")
    return data

