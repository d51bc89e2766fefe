"""Reading Omniglot's files: the official zips, a folder of PNGs, the ``.npz`` conversion.

Every drawing becomes a (28, 28) float32 array with ink = 1.0 (:func:`resize`). What
is read is checked before it is trusted, each refusal a ValueError naming the file: a
zip member or PNG too large to be a drawing is refused before it is unpacked or
decoded (so a hostile file costs no memory), an npz must hold binary images with
white background and one distinct character id per row.
"""
import io
import json
import pathlib
import re
import warnings
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .data import Omniglot

IMAGE_SIZE = 28
DRAWINGS = 20
MAX_PNG_BYTES = 1 << 20     # a 105x105 drawing's PNG is a few hundred bytes
MAX_PNG_SIDE = 2048         # pixels; Omniglot's drawings are 105x105
_PNG_NAME = re.compile(r"(?:^|/)([^/]+)/([^/]+)/(\d{4})_(\d{2})\.png$")


def resize(background: Any) -> np.ndarray:
    """A 105x105 drawing (bool or 0/255, True/255 = white background) -> (28, 28) float32
    with ink = 1.0, via PIL's Lanczos filter (as the official MAML preprocessing)."""
    from PIL import Image
    gray = np.where(np.asarray(background) != 0, 255, 0).astype(np.uint8)
    small = Image.fromarray(gray, mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
    return 1.0 - np.asarray(small, dtype=np.float32) / 255.0


def _decode_png(raw: bytes, name: str) -> np.ndarray:
    """One PNG's bytes -> resized drawing; ValueError naming ``name`` if it is not a
    readable, drawing-sized image (its size is checked before its pixels are decoded)."""
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as png:
                if max(png.size) > MAX_PNG_SIDE:
                    raise ValueError(f"{name}: a {png.size[0]}x{png.size[1]} image, larger "
                                     f"than a drawing can be ({MAX_PNG_SIDE}x{MAX_PNG_SIDE} "
                                     f"at most; Omniglot's are 105x105); not decoding it")
                return resize(np.asarray(png.convert("L")))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(f"{name}: refused, too many pixels to decode safely ({err})") from None
    except (OSError, SyntaxError, EOFError) as err:   # PIL's errors for a bad image file
        raise ValueError(f"{name}: not a readable PNG ({err})") from None


def _too_large(name: str, size: int) -> ValueError:
    return ValueError(f"{name}: {size:,} bytes unpacked, more than a drawing's PNG can be "
                      f"({MAX_PNG_BYTES:,} at most); refusing it (a corrupt or hostile file?)")


def assemble(images: dict, alphabets: dict, source: Any) -> "Omniglot":
    """{(id, drawer): (28, 28)} + {id: alphabet} -> Omniglot, checking 20 drawings each."""
    from .data import Omniglot
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


def read_zip(path: pathlib.Path) -> "Omniglot":
    """An official archive (``.../Alphabet/characterNN/NNNN_DD.png``)."""
    images, alphabets = {}, {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                match = _PNG_NAME.search(info.filename)
                if not match:
                    continue
                name = f"{path}:{info.filename}"
                if info.file_size > MAX_PNG_BYTES:
                    raise _too_large(name, info.file_size)
                with archive.open(info) as member:
                    raw = member.read(MAX_PNG_BYTES + 1)   # the header may lie
                if len(raw) > MAX_PNG_BYTES:
                    raise _too_large(name, len(raw))
                alphabet, _, char_id, drawer = match.groups()
                images[int(char_id), int(drawer)] = _decode_png(raw, name)
                alphabets[int(char_id)] = alphabet
    except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as err:
        raise ValueError(f"{path}: not a readable zip archive of PNGs (truncated or "
                         f"corrupt?): {err}") from None
    return assemble(images, alphabets, path)


def read_png_dir(path: pathlib.Path) -> "Omniglot":
    """A folder holding the official tree of PNGs (at any depth)."""
    images, alphabets = {}, {}
    for png_path in sorted(pathlib.Path(path).rglob("*.png")):
        match = _PNG_NAME.search(png_path.as_posix())
        if not match:
            continue
        try:
            size = png_path.stat().st_size
            if size > MAX_PNG_BYTES:
                raise _too_large(str(png_path), size)
            raw = png_path.read_bytes()
        except OSError as err:
            raise ValueError(f"{png_path}: not readable ({err.strerror})") from None
        alphabet, _, char_id, drawer = match.groups()
        images[int(char_id), int(drawer)] = _decode_png(raw, str(png_path))
        alphabets[int(char_id)] = alphabet
    return assemble(images, alphabets, path)


def background_mask(images: np.ndarray, path: Any) -> np.ndarray:
    """Where the drawings are background (True), from bool, integer (0/255 or 0/1) or
    float ([0, 1]) pixels, background being the high value; ValueError naming ``path``
    for other values, or for drawings that are mostly ink (inverted?)."""
    if images.dtype == np.bool_:
        # Stored as bytes: the shipped files hold 0/255 under the bool dtype.
        mask = images.view(np.uint8) != 0
    elif np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating):
        top = 1.0 if np.issubdtype(images.dtype, np.floating) else 255
        low, high = images.min(), images.max()
        if not (np.isfinite(low) and np.isfinite(high) and 0 <= low and high <= top):
            raise ValueError(f"{path}: images of dtype {images.dtype} must hold values in "
                             f"0..{top:g} (0 = ink); found {low}..{high}")
        scale = 255 if (top == 255 and high > 1) else 1
        mask = images > scale / 2
    else:
        raise ValueError(f"{path}: images must be bool, integers or floats; got dtype "
                         f"{images.dtype}")
    if mask.mean() < 0.5:
        raise ValueError(f"{path}: the images are mostly ink ({1 - mask.mean():.0%} of the "
                         f"pixels); expected background = True/1/255 and ink = False/0 "
                         f"(inverted images?)")
    return mask


def character_ids(labels: np.ndarray, path: Any) -> np.ndarray:
    """(C, 20) labels -> (C,) character ids, one per row; ValueError naming ``path``
    unless every row holds one integer id and no two rows share one."""
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(f"{path}: labels must be integer character ids; got dtype "
                         f"{labels.dtype}")
    bad = ~np.isfinite(labels) | (labels != np.round(labels)) | (labels < 0)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise ValueError(f"{path}: labels must be integer character ids >= 0; got "
                         f"{labels[row, col]} at row {row}, drawing {col}")
    labels = labels.astype(np.int64)
    mixed = np.flatnonzero((labels != labels[:, :1]).any(axis=1))
    if mixed.size:
        raise ValueError(f"{path}: row {mixed[0]} of labels holds several character ids "
                         f"({sorted(set(labels[mixed[0]].tolist()))[:4]}); each row is the "
                         f"{DRAWINGS} drawings of one character")
    ids = labels[:, 0]
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = unique[counts > 1][0]
        rows = np.flatnonzero(ids == repeated)[:2].tolist()
        raise ValueError(f"{path}: rows {rows[0]} and {rows[1]} have the same character id "
                         f"{repeated} ({len(ids) - len(unique)} rows repeat an earlier row's "
                         f"id); each row must be its own character")
    return ids


def read_npz(path: pathlib.Path) -> "Omniglot":
    """The offline conversion: ``images`` (C, 20, H, W), background high (bool stored as
    0/255 bytes in the shipped files), ``labels`` (C, 20) character ids; alphabets from
    ``id_to_alphabet.json`` beside it."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz file (numpy's zip of arrays)")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"images", "labels"} - set(data.files)
            if missing:
                raise ValueError(f"holds {sorted(data.files) or 'no arrays'}; an Omniglot "
                                 f"npz needs 'images' and 'labels'")
            images, labels = np.asarray(data["images"]), np.asarray(data["labels"])
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: not a readable Omniglot npz: {err}") from None
    if images.ndim != 4 or images.shape[1] != DRAWINGS or labels.shape != images.shape[:2]:
        raise ValueError(f"{path}: expected images (C, {DRAWINGS}, H, W) and labels "
                         f"(C, {DRAWINGS}); got {images.shape} and {labels.shape}")
    if images.shape[0] == 0 or min(images.shape[2:]) == 0:
        raise ValueError(f"{path}: holds no drawings (images {images.shape})")
    if max(images.shape[2:]) > MAX_PNG_SIDE:
        raise ValueError(f"{path}: drawings of {images.shape[2]}x{images.shape[3]} pixels, "
                         f"larger than {MAX_PNG_SIDE}x{MAX_PNG_SIDE}")
    background = background_mask(images, path)
    ids = character_ids(labels, path)
    if ids.min() == 0:
        # 0-based rows of this file (as the shipped files have, despite their README):
        # background rows are ids 1..964, evaluation rows ids 965..1623.
        ids = ids + 1 + (964 if pathlib.Path(path).name.startswith("images_evaluation") else 0)
    names_file = pathlib.Path(path).with_name("id_to_alphabet.json")
    names = json.loads(names_file.read_text()) if names_file.exists() else {}
    images_by_id, alphabets = {}, {}
    for c, i in enumerate(ids.tolist()):
        for d in range(DRAWINGS):
            images_by_id[i, d + 1] = resize(background[c, d])
        alphabets[i] = names.get(f"{i:04d}", "unknown")
    return assemble(images_by_id, alphabets, path)
