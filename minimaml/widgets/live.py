"""What every widget shares: a "compiling…" first draw, a layout that follows the window,
and a still picture for viewers without a kernel.

The live panels (:mod:`.frames`) are drawn by the browser from the numbers, instead of
a whole PNG frame per move (see BENCHMARKS.md, widget latency). matplotlib draws the
still (:meth:`LiveWidget.still_figure`), which the saved notebook shows where no kernel
runs, with the control values in its title.
"""
import base64
import contextlib
import io
import time
from typing import Any, Iterator, Sequence

import ipywidgets as widgets

def panel_row(*figures: Any) -> widgets.Box:
    """Figures side by side while they fit, stacked when the window is narrow."""
    return widgets.Box(list(figures), layout=widgets.Layout(
        display="flex", flex_flow="row wrap", width="100%", align_items="stretch"))


def control_row(*controls: widgets.Widget) -> widgets.Box:
    """Controls side by side, wrapping onto the next line rather than shrinking."""
    return widgets.Box(list(controls), layout=widgets.Layout(
        display="flex", flex_flow="row wrap", width="100%", align_items="center"))


def slider_layout(control: widgets.Widget, css: str, min_width: str = "250px") -> widgets.Widget:
    """Give a slider a track that stays usable (never narrower than ``min_width``)."""
    control.style.description_width = "initial"
    control.layout = widgets.Layout(width="auto", min_width=min_width, flex="1 1 300px",
                                    max_width="480px")
    control.add_class(f"minimaml-{css}")
    return control


def button(description: str, tooltip: str, css: str, icon: str = "") -> widgets.Button:
    """A button that keeps its label (it never shrinks below it) and says what it does."""
    b = widgets.Button(description=description, tooltip=tooltip, icon=icon,
                       layout=widgets.Layout(width="auto", min_width="max-content",
                                             flex="0 0 auto"))
    b.add_class(f"minimaml-{css}")
    return b


_SELF_DISPLAY = [True]


@contextlib.contextmanager
def embedded() -> Iterator[None]:
    """Inside this block widgets do not show themselves when made (to place them in a
    Tab or a page of your own, e.g. the standalone app)."""
    _SELF_DISPLAY.append(False)
    try:
        yield
    finally:
        _SELF_DISPLAY.pop()


def in_kernel() -> bool:
    """True inside a running Jupyter kernel (a frontend may be watching)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveWidget(widgets.VBox):
    """A widget that shows itself at once with a "compiling…" line, then its first draw.

    Subclasses build their controls and panels in ``__init__``, call :meth:`start`
    with a function that computes and draws the first state, and implement
    :meth:`still_figure` (matplotlib, title = the control values).
    ``first_draw_seconds``: from :meth:`start` to the first complete draw;
    ``shell_seconds``: from :meth:`start` to the "compiling…" shell being sent.
    """

    def __init__(self, children: Sequence[widgets.Widget], name: str):
        self.status = widgets.HTML().add_class("minimaml-status")
        self._display_id: str | None = None
        self._shown_in: int | None = None
        self.first_draw_seconds = float("nan")
        self.shell_seconds = float("nan")
        super().__init__([*children, self.status],
                         layout=widgets.Layout(width="100%", max_width="1100px"))
        self.add_class("minimaml-live")
        self.add_class(f"minimaml-{name}")

    def start(self, first_draw: Any, what: str) -> None:
        """Show the shell with "compiling… ``what``" (in a kernel), run ``first_draw()``,
        refresh the still picture, then clear the line."""
        started = time.perf_counter()
        self.status.value = (f"<span class='minimaml-compiling'>⏳ compiling… {what} "
                             f"(JAX compiles once; the sliders then run without it)</span>")
        if in_kernel() and _SELF_DISPLAY[-1]:
            import uuid

            from IPython import get_ipython
            from IPython.display import display
            self._display_id = uuid.uuid4().hex
            self._shown_in = get_ipython().execution_count
            display(self._bundle(still=False), raw=True, display_id=self._display_id)
        self.shell_seconds = time.perf_counter() - started
        first_draw()
        self.first_draw_seconds = time.perf_counter() - started
        if self._display_id is not None:
            # Replacing the display re-renders the widget in the browser; the "compiling…"
            # line goes only after that, so nobody grabs a slider that is about to be redrawn.
            from IPython.display import update_display
            update_display(self._bundle(), raw=True, display_id=self._display_id)
        self.status.value = ""

    # -- stills --
    def still_figure(self) -> Any:
        """A matplotlib figure of what the widget shows now, its title the control values."""
        raise NotImplementedError

    def still_png(self) -> bytes:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        with matplotlib.rc_context({"figure.dpi": 80}):
            figure = self.still_figure()
        FigureCanvasAgg(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()

    def _bundle(self, still: bool = True) -> dict:
        bundle = super()._repr_mimebundle_()
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        bundle = dict(bundle or {})
        bundle["text/plain"] = (f"{type(self).__name__} (live with a running kernel; "
                                f"the picture is a still of its last state)")
        if still:
            bundle["image/png"] = base64.b64encode(self.still_png()).decode()
        return bundle

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self._bundle()

    def _ipython_display_(self) -> None:
        # start() already showed this widget in the cell that made it: showing it again
        # as that cell's value would draw it twice. (A later cell shows it again.)
        from IPython import get_ipython
        from IPython.display import display
        shell = get_ipython()
        if self._shown_in is not None and shell is not None \
                and shell.execution_count == self._shown_in:
            return
        display(self._bundle(), raw=True)
