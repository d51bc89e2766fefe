"""What every experiment run shares: its output folder, its limits, its record.

- :class:`RunFolder` — one run at a time per folder (a lock), all outputs written to
  a staging folder and moved into place together, leftovers of killed runs cleaned up;
- :func:`check_memory` — refuse, before the work, a run whose largest arrays would not
  fit (a limit the caller can raise);
- :class:`StopOnInterrupt` — Ctrl-C stops training at the next chunk, so the run can
  save what it finished (:class:`Interrupted` says where);
- :func:`versions` — the software and machine, recorded beside the results.

How the outputs move into place together: they are written into ``.staging-*`` inside
the folder; then a small journal (``.commit.json``, itself written atomically) lists
them — the moment the new set counts as written — and they are renamed over the old
ones, the old set's other files removed. A run killed before the journal leaves the
old set as it was; one killed during the renames left a journal, and the next run on
the folder (any :class:`RunFolder` opening it) finishes them. Either way the folder
ends up holding one run's complete set, never a mix.
"""
import json
import math
import os
import pathlib
import platform
import shutil
import signal
import threading
import time
from typing import Any, Callable

import jax
import numpy as np
import optax

from . import npz

LOCK_NAME = ".lock"
JOURNAL_NAME = ".commit.json"
STAGING_PREFIX = ".staging-"

_held: dict[str, list] = {}     # folder (real path) -> [lock file, depth]: locks we hold
_staging_count = 0


class RunLocked(ValueError):
    """Another process is writing to this output folder."""


class Interrupted(Exception):
    """A run stopped by Ctrl-C after saving what it could; the message says where."""


def versions() -> dict[str, Any]:
    """The ``versions`` block of ``metrics.json``: library versions, backend and device."""
    from . import __version__
    return {"minimaml": __version__, "jax": jax.__version__, "optax": optax.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "backend": jax.default_backend(), "device": str(jax.devices()[0]),
            "device_count": jax.device_count()}


# ---------------------------------------------------------------------------
# The output folder.

def _lock(file) -> bool:
    """Take an exclusive lock on an open file without waiting; False if someone has it.
    The OS drops it when the process ends, however it ends (SIGKILL included)."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt
        try:
            msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _fsync_dir(path: pathlib.Path) -> None:
    if os.name != "nt":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_rename = os.replace     # one name for the commit's renames (tests kill the process there)


def _write_journal(path: pathlib.Path, plan: dict[str, Any]) -> None:
    npz.atomic_write(path, lambda f: f.write(json.dumps(plan).encode()))


class RunFolder:
    """An output folder written by one run at a time, all its outputs at once.

        with RunFolder("runs/x", outputs=("params.npz", "metrics.json")) as folder:
            ...                                   # train: the folder is locked
            npz.save(folder.stage("params.npz"), params)
            folder.stage("metrics.json").write_text(...)
            folder.commit()                       # both appear together

    Opening it checks, before any work, that the folder can be made and written (a
    ValueError naming ``name``, the caller's word for the folder, otherwise), takes its
    lock (:class:`RunLocked` when another process holds it), finishes a commit a killed
    run left half done, and removes stale staging folders and temporary files. A
    process may open one folder again inside the first (the lock is re-entrant).

    ``outputs`` are the names a complete set consists of: :meth:`commit` removes those
    of the old set that the new one lacks. Other files (a checkpoint) are left alone.
    """

    def __init__(self, path: os.PathLike, outputs: tuple[str, ...] = (),
                 name: str = "out_dir"):
        self.path, self.outputs, self.name = pathlib.Path(path), tuple(outputs), name
        self.cleaned: list[pathlib.Path] = []   # stale leftovers removed on opening
        self._staging: pathlib.Path | None = None

    def __enter__(self) -> "RunFolder":
        from .checks import ArgumentError
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise ArgumentError(self.name, "a folder to write the run's outputs in",
                                str(self.path), " (a file of that name is in the way)") from None
        except OSError as err:
            raise ArgumentError(self.name, "a folder the run can create and write",
                                str(self.path), f" ({err.strerror})") from None
        key = os.path.realpath(self.path)
        if key in _held:
            _held[key][1] += 1
            return self
        try:
            lock_file = open(self.path / LOCK_NAME, "a+")
        except OSError as err:
            raise ArgumentError(self.name, "a folder the run can write", str(self.path),
                                f" ({err.strerror})") from None
        if not _lock(lock_file):
            lock_file.seek(0)
            owner = lock_file.read().strip() or "a process"
            lock_file.close()
            raise RunLocked(f"{self.path} is being written by another run ({owner}); "
                            f"wait for it to end, or choose another {self.name}")
        try:
            lock_file.seek(0)
            lock_file.truncate()
            lock_file.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            lock_file.flush()
            os.fsync(lock_file.fileno())
            _held[key] = [lock_file, 1]
            self.cleaned = self._recover()
        except BaseException:
            _held.pop(key, None)
            lock_file.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        key = os.path.realpath(self.path)
        _held[key][1] -= 1
        if _held[key][1] == 0:
            _held.pop(key)[0].close()    # releases the lock

    def _recover(self) -> list[pathlib.Path]:
        """Finish a journaled commit, then remove staging folders and temporary files."""
        journal = self.path / JOURNAL_NAME
        if journal.exists():
            self._apply(json.loads(journal.read_text()))
        stale = [p for p in self.path.glob(STAGING_PREFIX + "*") if p.is_dir()]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return stale + npz.remove_stale_temp_files(self.path, any_process=True)

    def stage(self, name: str) -> pathlib.Path:
        """The path to write output ``name`` to; it appears in the folder on :meth:`commit`."""
        global _staging_count
        if self._staging is None:
            _staging_count += 1
            self._staging = self.path / f"{STAGING_PREFIX}{os.getpid()}-{_staging_count}"
            self._staging.mkdir()
        return self._staging / name

    def commit(self, into: str = "") -> pathlib.Path:
        """Move every staged file into the folder (or its subfolder ``into``) at once.

        Into the folder itself, the old set's ``outputs`` that were not staged now are
        removed; a subfolder is replaced as a whole. Returns the folder written.
        """
        if self._staging is None:
            raise ValueError("nothing was staged to commit")
        staged = sorted(p.name for p in self._staging.iterdir())
        target = self.path / into
        old = self.outputs if not into else \
            (sorted(p.name for p in target.iterdir() if p.is_file()) if target.is_dir() else [])
        for path in self._staging.iterdir():
            if os.name != "nt":
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        plan = {"staging": self._staging.name, "into": into, "files": staged,
                "remove": [n for n in old if n not in staged]}
        _write_journal(self.path / JOURNAL_NAME, plan)
        self._apply(plan)
        self._staging = None
        return target

    def _apply(self, plan: dict[str, Any]) -> None:
        staging, target = self.path / plan["staging"], self.path / plan["into"]
        target.mkdir(parents=True, exist_ok=True)
        for name in plan["files"]:
            if (staging / name).exists():
                _rename(staging / name, target / name)
        for name in plan["remove"]:
            (target / name).unlink(missing_ok=True)
        _fsync_dir(target)
        (self.path / JOURNAL_NAME).unlink(missing_ok=True)
        _fsync_dir(self.path)
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------
# Memory: refuse before the work what would not fit.

class TooLarge(ValueError):
    """The run's largest arrays would exceed the memory limit."""


def memory_limit(limit_gb: float | None = None) -> float:
    """The limit in bytes: ``limit_gb`` GiB, else the device's memory (the accelerator's,
    or the machine's RAM on CPU); infinite where neither can be read."""
    if limit_gb is not None:
        from .checks import check_positive
        return float(check_positive(limit_gb, "memory_limit_gb")) * 2**30
    try:
        stats = jax.devices()[0].memory_stats() or {}
        if stats.get("bytes_limit"):
            return float(stats["bytes_limit"])
    except Exception:  # backends without memory_stats
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return math.inf


def check_memory(estimates: dict[str, tuple[float, str]],
                 limit_gb: float | None = None) -> None:
    """Raise :class:`TooLarge` if a phase's estimated largest arrays exceed the limit.

    ``estimates`` maps a phase ("the meta-test") to (bytes, the settings that size it);
    the limit is :func:`memory_limit` of ``limit_gb``.
    """
    limit = memory_limit(limit_gb)
    for phase, (size, settings) in estimates.items():
        if size > limit:
            raise TooLarge(
                f"{phase} would need about {size / 2**30:,.1f} GiB for its largest arrays, "
                f"more than the memory limit of {limit / 2**30:,.1f} GiB; lower {settings}, "
                f"or raise memory_limit_gb if you know it fits")


# ---------------------------------------------------------------------------
# Ctrl-C.

class StopOnInterrupt:
    """An ``on_chunk`` callback that asks training to stop after a Ctrl-C (SIGINT).

    Inside the ``with`` block the first SIGINT sets :attr:`requested` (and calls
    ``notify`` with a line to show); training stops at the end of the chunk it is in, and
    the caller saves what it has. A second SIGINT raises KeyboardInterrupt at once.
    Outside the main thread (where signals cannot be caught) it does nothing.
    """

    def __init__(self, notify: Callable[[str], None] | None = None):
        self.notify, self.requested = notify, False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.notify:
            self.notify("Ctrl-C: stopping at the end of this chunk of steps to save what "
                        "is done (press Ctrl-C again to quit at once, saving nothing more)")

    def __call__(self, step: int, params: Any, opt_state: Any, losses: np.ndarray) -> bool:
        return self.requested

    def __enter__(self) -> "StopOnInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

def _plain(value: Any) -> Any:
    """``value`` with numpy/JAX numbers and arrays turned into JSON's floats, ints and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    array = np.asarray(value)
    return array.tolist() if array.ndim else array.item()


def write_results(path: Any, **results: Any) -> None:
    """Write a chapter's key numbers as JSON to ``path`` (the notebook tests read them);
    do nothing when ``path`` is None, as when a reader runs the chapter."""
    if path is None:
        return
    import json
    import pathlib
    pathlib.Path(path).write_text(json.dumps(_plain(results), indent=1))
