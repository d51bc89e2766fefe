"""A line panel drawn by the browser, holding every frame a slider can pick.

:class:`FramePanel` (an anywidget) gets curves as float32 bytes: ``static`` curves
(drawn always) and ``frames`` (F frames of C curves; frame ``index`` is drawn). Link its
``index`` to a slider in the browser (:func:`link_index`) and moving that slider redraws
the panel without asking the kernel: no websocket round trip, no Python, however busy
the machine. Optional: points (triangles), a dot on each static curve at ``x[index]``,
and a legend that prints each static curve's value there.
"""
import pathlib
from typing import Any, Sequence

import anywidget
import ipywidgets as widgets
import numpy as np
import traitlets

_JS = pathlib.Path(__file__).with_name("frames.js")


def f32(values: Any) -> bytes:
    return np.ascontiguousarray(values, dtype=np.float32).tobytes()


class FramePanel(anywidget.AnyWidget):
    """See the module docstring. Set data with :meth:`set_static`, :meth:`set_frames`,
    :meth:`set_points`; read it back with :meth:`static_curves`, :meth:`frame`."""

    _esm = _JS
    x = traitlets.Bytes(b"").tag(sync=True)
    static = traitlets.Bytes(b"").tag(sync=True)
    static_colors = traitlets.List(traitlets.Unicode()).tag(sync=True)
    static_widths = traitlets.List(traitlets.Float()).tag(sync=True)
    frames = traitlets.Bytes(b"").tag(sync=True)
    frame_shape = traitlets.List(traitlets.Int(), [0, 0, 0]).tag(sync=True)
    frame_colors = traitlets.List(traitlets.Unicode()).tag(sync=True)
    frame_width = traitlets.Float(2.0).tag(sync=True)
    points = traitlets.Bytes(b"").tag(sync=True)
    index = traitlets.Int(0).tag(sync=True)
    dots_at_index = traitlets.Bool(False).tag(sync=True)
    legend = traitlets.List(traitlets.Unicode()).tag(sync=True)
    legend_format = traitlets.Unicode("3g").tag(sync=True)
    x_range = traitlets.List(traitlets.Float(), [0.0, 1.0]).tag(sync=True)
    y_range = traitlets.List(traitlets.Float(), [0.0, 1.0]).tag(sync=True)
    log_x = traitlets.Bool(False).tag(sync=True)
    log_y = traitlets.Bool(False).tag(sync=True)
    x_label = traitlets.Unicode("").tag(sync=True)
    y_label = traitlets.Unicode("").tag(sync=True)
    height = traitlets.Int(290).tag(sync=True)

    def __init__(self, x: Sequence[float], *, x_range: Sequence[float],
                 y_range: Sequence[float], x_label: str, y_label: str, log_x: bool = False,
                 log_y: bool = False, flex: str = "1 1 420px", min_width: str = "300px",
                 height: int = 290, **kwargs: Any):
        super().__init__(x=f32(x), x_range=[float(v) for v in x_range],
                         y_range=[float(v) for v in y_range], x_label=x_label,
                         y_label=y_label, log_x=log_x, log_y=log_y, height=height,
                         layout=widgets.Layout(width="auto", min_width=min_width, flex=flex),
                         **kwargs)
        self._n = len(x)

    def set_static(self, curves: Any, colors: Sequence[str],
                   widths: Sequence[float] | None = None) -> None:
        curves = np.asarray(curves, np.float32).reshape(-1, self._n)
        with self.hold_sync():
            self.static = f32(curves)
            self.static_colors = list(colors)
            self.static_widths = [float(w) for w in (widths or [2.0] * len(curves))]

    def set_frames(self, frames: Any, colors: Sequence[str] | None = None) -> None:
        frames = np.asarray(frames, np.float32)
        frames = frames.reshape(frames.shape[0], -1, self._n)
        with self.hold_sync():
            self.frames = f32(frames)
            self.frame_shape = list(frames.shape)
            if colors is not None:
                self.frame_colors = list(colors)

    def set_points(self, x: Any, y: Any) -> None:
        self.points = f32(np.stack([np.asarray(x, np.float32), np.asarray(y, np.float32)], 1))

    def static_curves(self) -> np.ndarray:
        return np.frombuffer(self.static, np.float32).reshape(-1, self._n)

    def frame(self, index: int | None = None) -> np.ndarray:
        """The curves drawn for ``index`` (default: the current one), (C, N)."""
        shape = self.frame_shape
        frames = np.frombuffer(self.frames, np.float32).reshape(shape)
        return frames[self.index if index is None else index]

    def point_data(self) -> np.ndarray:
        return np.frombuffer(self.points, np.float32).reshape(-1, 2)


def link_index(source: tuple[widgets.Widget, str], *panels: FramePanel) -> list:
    """Make ``source`` (e.g. ``(steps_slider, "value")``) drive each panel's ``index``
    in the browser. (Python does not set ``index`` after this: a value sent from the
    kernel could arrive after a newer move and show a stale frame. Read the source.)"""
    for panel in panels:
        panel.index = int(getattr(*source))
    return [widgets.jsdlink(source, (panel, "index")) for panel in panels]
