"""A matplotlib figure on an ipympl canvas that redraws only what moves (blitting)."""
import base64
import io
from typing import Any

import numpy as np


def new_canvas(figsize: tuple[float, float], dpi: int) -> Any:
    """An ipympl canvas whatever pyplot's backend is (inline in the chapters, Agg in
    tests), not registered with pyplot, so a reader's plt.plot() never lands on it."""
    import matplotlib.pyplot as plt
    from ipympl.backend_nbagg import new_figure_manager

    with plt.ioff():
        manager = new_figure_manager(0, figsize=figsize, dpi=dpi)
    canvas = manager.canvas
    canvas.header_visible = False
    canvas.toolbar_visible = False
    canvas.resizable = False
    return canvas


class BlitFigure:
    """``figure`` on an ipympl canvas; ``animated`` artists are drawn over a saved
    background by :meth:`blit`, the rest only on a full draw."""

    def __init__(self, figsize: tuple[float, float], dpi: int = 80):
        self.canvas = new_canvas(figsize, dpi)
        self.figure = self.canvas.figure
        self.animated: list = []
        self._background = None
        self.canvas.mpl_connect("draw_event", self._on_draw)

    def show(self) -> None:
        """Prepare the canvas for display inside another widget and draw it once.

        ipympl sets up the canvas's first picture and size when the canvas itself is
        displayed; inside a box it never is, so ask it here. Without a frontend ipympl
        would also re-encode every frame into that picture, and it stores it without its
        "data:" prefix (a broken image in the browser): switch that off.
        """
        self.canvas.syncing_data_url = False
        self.canvas._repr_mimebundle_()
        self.canvas.draw()   # full draw once (background + artists); later updates blit

    def _on_draw(self, event: Any) -> None:
        # After any full draw (first display, resize, HiDPI), keep the static parts as
        # the background and draw the moving ones on top. savefig draws the moving ones
        # itself: a background taken then would hold them (ghost lines later).
        if self.canvas.is_saving():
            return
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        self._draw_animated()

    def _draw_animated(self) -> None:
        for artist in self.animated:
            artist.axes.draw_artist(artist)

    def blit(self) -> None:
        """Redraw the animated artists over the background and send the frame."""
        if self._background is None:
            self.canvas.draw()
            return
        self.canvas.restore_region(self._background)
        self._draw_animated()
        # Send a whole frame, not a diff against the last one: frames we push faster
        # than the browser loads them get dropped there, and a later diff applied to a
        # stale picture leaves ghost lines. (A full frame costs ~1-2 ms more to encode.)
        self.canvas._force_full = True
        self.canvas.blit(self.figure.bbox)

    def png(self) -> bytes:
        """The figure as it is drawn now, as PNG bytes."""
        from PIL import Image

        pixels = np.asarray(self.canvas.get_renderer().buffer_rgba())
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="png")
        return buffer.getvalue()

    def png_base64(self) -> str:
        return base64.b64encode(self.png()).decode()
