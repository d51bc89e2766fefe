"""Widgets the chapters embed (the ``notebooks`` extra: ipywidgets, anywidget, matplotlib).

Each is one call in a cell, e.g. ``from minimaml.widgets import playground; playground()``:

- :func:`playground`             chapter 7: one sinusoid task, three inits fine-tuning
- :func:`second_order_explorer`  chapter 2: second- vs first-order meta-gradients per layer
- :func:`meta_training_scrubber` chapter 3: θ along a meta-training run, its fits and meta-test
- :func:`first_vs_second_order`  chapter 5: FOMAML's and MAML's θ adapting one task
- :func:`omniglot_adaptation`    chapter 6: a 5-way task, class probabilities after each step

Modules: :mod:`.live` (the "compiling…" first draw, layout, stills), :mod:`.frames`
(line panels the browser draws and steps through itself),
:mod:`.sinusoid_adaptation` (the playground's computation), :mod:`.sinusoid_figures`,
:mod:`.sinusoid_playground`, :mod:`.playground_ipympl` and :mod:`.canvas` (the ipympl renderer, for
comparison), :mod:`.gradients`, :mod:`.scrubber`, :mod:`.orders`, :mod:`.omniglot_view`.

Importing this package is cheap: each name loads its module (and JAX, ipywidgets,
anywidget) when first used. (No module is named like a function it exports: importing
a submodule binds its name on the package, which would hide the function.)
"""
import importlib

_WHERE = {
    "playground": "sinusoid_playground", "Playground": "sinusoid_playground",
    "RENDERERS": "sinusoid_playground",
    "COLORS": "sinusoid_figures", "INITS": "sinusoid_figures",
    "second_order_explorer": "gradients", "SecondOrderExplorer": "gradients",
    "meta_gradients": "gradients",
    "meta_training_scrubber": "scrubber", "MetaTrainingScrubber": "scrubber",
    "load_snapshots": "scrubber", "SNAPSHOT_STEPS": "scrubber",
    "first_vs_second_order": "orders",
    "load_first_order_params": "orders",
    "omniglot_adaptation": "omniglot_view", "OmniglotAdaptation": "omniglot_view",
    "load_shipped_omniglot": "omniglot_view",
}
for _name in ("DIVERGED_MSE", "GRID", "INNER_LR_RANGE", "MAX_SHOTS", "MAX_STEPS", "MSE_CLIP",
              "QUERY_POINTS", "Y_CLIP", "Y_LIMIT", "Adaptation", "PlotData", "adapt",
              "check_params", "diverged_at", "load_shipped_params", "plot_data", "sample_task",
              "view"):
    _WHERE[_name] = "sinusoid_adaptation"

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'minimaml.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
