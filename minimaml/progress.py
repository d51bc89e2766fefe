"""Progress bars for training, as an ``on_chunk`` callback (the library itself prints nothing).

    with ProgressBar(total=70_000, desc="MAML") as bar:
        params, _, losses = meta_train(params, loss_fn, sampler, key, meta_steps=70_000,
                                       inner_lr=0.01, on_chunk=bar)

Uses tqdm (the ``notebooks`` extra) when it is installed, and shows nothing otherwise.
"""
import time
from typing import Any

import numpy as np

from .types import OnChunk


class ProgressBar:
    """An ``on_chunk`` callback that advances a tqdm bar by each chunk's steps.

    ``scale`` counts something else than steps (e.g. tasks: ``scale=meta_batch``).
    """

    def __init__(self, total: int, desc: str = "training", *, initial: int = 0,
                 scale: int = 1, unit: str = "step", enabled: bool = True):
        self.scale = scale
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total * scale, initial=initial * scale, desc=desc,
                             unit=unit, unit_scale=scale > 1, dynamic_ncols=True)

    def __call__(self, step: int, params: Any, opt_state: Any, losses: np.ndarray) -> None:
        if self._bar is not None:
            self._bar.update(len(losses) * self.scale)
            self._bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4g}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def chain(*callbacks: OnChunk | None) -> OnChunk:
    """One ``on_chunk`` calling each of ``callbacks`` in turn; stops if any asks to stop."""
    active = [c for c in callbacks if c is not None]

    def on_chunk(step, params, opt_state, losses):
        stop = False
        for callback in active:
            stop = bool(callback(step, params, opt_state, losses)) or stop
        return stop
    return on_chunk


class ChunkTimer:
    """An ``on_chunk`` callback that times each chunk of training steps.

    Call it first in a :func:`chain` and its :meth:`restart` last, so that the time other
    callbacks spend (evaluation, checkpoints) is not counted. :meth:`ms_per_step` is the
    median over the chunks after the first (whose time includes compiling).
    """

    def __init__(self) -> None:
        self.chunks: list[tuple[int, float]] = []
        self._start = time.perf_counter()

    def __call__(self, step: int, params: Any, opt_state: Any, losses: np.ndarray) -> None:
        self.chunks.append((len(losses), time.perf_counter() - self._start))

    def restart(self, *args: Any) -> None:
        self._start = time.perf_counter()

    def ms_per_step(self) -> float | None:
        """Median milliseconds per step over the chunks after the first (None: no chunk)."""
        timed = self.chunks[1:] or self.chunks
        if not timed:
            return None
        return 1e3 * float(np.median([seconds / steps for steps, seconds in timed]))
