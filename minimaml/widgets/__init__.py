"""Widgets the chapters embed (the ``notebooks`` extra: ipywidgets, ipympl, matplotlib).

- :mod:`.sinusoid_adaptation` the pure computation behind the sinusoid playground
- :mod:`.canvas`              a figure on an ipympl canvas that redraws only what moves
- :mod:`.playground`          the live adaptation playground
"""
from .playground import COLORS, INITS, Playground, playground
from .sinusoid_adaptation import (DIVERGED_MSE, GRID, INNER_LR_RANGE, MAX_SHOTS, MAX_STEPS,
                                  MSE_CLIP, QUERY_POINTS, Y_CLIP, Y_LIMIT, Adaptation, PlotData,
                                  adapt, check_params, diverged_at, load_shipped_params,
                                  plot_data, sample_task, view)
