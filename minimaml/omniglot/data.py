"""Omniglot data: download, verify, read, resize, cache.

The official archives of Lake et al. (1,623 handwritten characters from 50 alphabets,
20 drawings each, 105x105 binary PNGs), downloaded with pooch and checked against their
sha256, or read from a local path (a directory, an official zip, or the ``.npz``
conversion). Each drawing is resized to 28x28 (PIL Lanczos), ink = 1.0 and background =
0.0, and the result is cached as an npz in a user cache directory.

Where the data is found, in order: the ``source`` argument (the CLI's ``--data``), the
directory named by ``$MINIMAML_OMNIGLOT_DIR``, else the download cache (downloading the
two official archives on first use). pooch and Pillow come with the ``omniglot`` extra.
"""
import hashlib
import io
import json
import os
import pathlib
import re
import warnings
import zipfile
from typing import NamedTuple

import numpy as np

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


def default_cache_dir() -> pathlib.Path:
    """``$MINIMAML_CACHE`` if set, else the OS user cache dir (e.g. ~/.cache/minimaml)."""
    import pooch
    return pathlib.Path(os.environ.get("MINIMAML_CACHE") or pooch.os_cache("minimaml"))


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


def resize(background: np.ndarray) -> np.ndarray:
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
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, images=data.images, ids=data.ids,
                        alphabets=data.alphabets.astype(str), key=np.array(key),
                        format=np.array(CACHE_FORMAT))
    os.replace(tmp, cache_file)
    return data

