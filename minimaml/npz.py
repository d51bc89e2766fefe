"""Parameter pytrees as plain ``.npz`` files: no pickle, one array per leaf.

Each leaf is stored under its path in the tree, ``/``-joined (``"0/w"`` is
``params[0]["w"]``), so a file reads back into the same nest of lists and dicts without
a template. Writes go to a temporary file in the same folder, then ``os.replace``: a
reader sees the old file or the new one, never half of one. A process killed while
writing leaves its temporary file behind; :func:`remove_stale_temp_files` clears them.
"""
import os
import pathlib
import re
import zipfile
from typing import Any

import jax
import numpy as np

from .types import PyTree


def _key_name(entry: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def flatten(tree: PyTree) -> dict[str, np.ndarray]:
    """``{"0/w": array, ...}``: each leaf of ``tree`` under its path."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(_key_name(k) for k in path): np.asarray(leaf) for path, leaf in leaves}


def unflatten(arrays: dict[str, np.ndarray]) -> PyTree:
    """Inverse of :func:`flatten` for nests of lists (integer keys) and dicts."""
    root: dict = {}
    for name, value in arrays.items():
        node = root
        *parents, last = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    def build(node):
        if not isinstance(node, dict):
            return node
        if node and all(k.isdigit() for k in node):
            return [build(node[str(i)]) for i in range(len(node))]
        return {k: build(v) for k, v in node.items()}
    return build(root)


# ".name.tmp<pid>" (atomic_write) and "name.tmp<pid>.npz" (older versions' checkpoints).
_TEMP_NAME = re.compile(r"^\.?.+\.tmp(\d+)(\.npz)?$")


def temp_path(path: os.PathLike) -> pathlib.Path:
    """Where :func:`atomic_write` writes ``path`` before renaming it: ``.name.tmp<pid>``."""
    path = pathlib.Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _process_alive(pid: int) -> bool:
    if os.name == "nt":     # os.kill(pid, 0) would end the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:         # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(folder: os.PathLike, *,
                            any_process: bool = False) -> list[pathlib.Path]:
    """Delete the temporary files that killed writers left in ``folder``; the list of them.

    Only files of processes that no longer run are removed, unless ``any_process`` (the
    caller knows no other process writes there, e.g. it holds the folder's lock).
    """
    removed = []
    for path in sorted(pathlib.Path(folder).glob("*.tmp*")):
        match = _TEMP_NAME.match(path.name)
        if (match and path.is_file() and int(match[1]) != os.getpid()
                and (any_process or not _process_alive(int(match[1])))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write(path: os.PathLike, write: Any) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into
    place; on any error the temporary file is removed and ``path`` is untouched."""
    path = pathlib.Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save(path: os.PathLike, tree: PyTree, **extra: np.ndarray) -> None:
    """Write ``tree``'s leaves (and any ``extra`` arrays, under ``_name``) to ``path``."""
    arrays = flatten(tree)
    arrays.update({f"_{name}": np.asarray(value) for name, value in extra.items()})
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path: os.PathLike, like: PyTree | None = None) -> tuple[PyTree, dict[str, np.ndarray]]:
    """``(tree, extra)`` from a file written by :func:`save`.

    With ``like``, the file must hold exactly ``like``'s leaves with their shapes (and
    is cast to their dtypes); otherwise ValueError names the file and the first
    difference. Loading never unpickles.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz file (numpy's zip of arrays)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npz file of plain arrays ({err})") from None
    extra = {name[1:]: arrays.pop(name) for name in list(arrays) if name.startswith("_")}
    if like is None:
        return unflatten(arrays), extra
    expected = flatten(like)
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: holds other parameters than expected (missing: "
                         f"{missing[:4] or 'none'}, unexpected: {unexpected[:4] or 'none'})")
    for name, want in expected.items():
        if arrays[name].shape != want.shape:
            raise ValueError(f"{path}: parameter {name} has shape {arrays[name].shape}; "
                             f"expected {want.shape}")
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(like)
    loaded = [np.asarray(arrays["/".join(_key_name(k) for k in p)], dtype=np.asarray(l).dtype)
              for p, l in leaves_with_path]
    return jax.tree.unflatten(treedef, loaded), extra
