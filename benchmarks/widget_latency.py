"""Playground latency: a control changes -> the figure's new pixels are ready to send.

Times, in the kernel process, everything a slider move costs there: the observer
(re-adapting the three networks when K or α changes), updating the line data, the
blit, and the PNG frame ipympl hands to the widget comm (a whole frame: see
``BlitFigure.blit`` for why not a diff). The comm has no
frontend here, so the browser's own drawing and the websocket are not included.
``syncing_data_url`` is switched off as a connected frontend does.

    python benchmarks/widget_latency.py            # writes its section of BENCHMARKS.md
    python benchmarks/widget_latency.py --no-write
"""
import argparse
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.report import machine_description, write_section  # noqa: E402
from minimaml.widgets import playground  # noqa: E402

TARGET_MS = 30.0


def time_moves(move, values, repeats, warmup=10):
    """Median, 90th percentile and minimum (ms) of ``move(value)`` cycling through ``values``."""
    for i in range(warmup):
        move(values[i % len(values)])
    times = []
    for i in range(warmup, warmup + repeats):   # every move changes the value
        start = time.perf_counter()
        move(values[i % len(values)])
        times.append(time.perf_counter() - start)
    times = np.array(times) * 1e3
    return float(np.median(times)), float(np.percentile(times, 90)), float(times.min())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    pg = playground(seed=0)
    first_draw_s = time.perf_counter() - start
    pg.figure.canvas.syncing_data_url = False

    def set_value(slider):
        return lambda value: setattr(slider, "value", value)

    def full_redraw(value):  # what each move would cost without blitting
        pg.steps_slider.value = value
        pg.figure.canvas.draw()

    cases = [
        ("K (re-adapts 3 networks, 50 steps each)", set_value(pg.shots_slider), [9, 10, 11, 12]),
        ("α (re-adapts 3 networks)", set_value(pg.inner_lr_slider), [0.0089, 0.01, 0.0112]),
        ("steps / play (indexes the stored trajectory)", set_value(pg.steps_slider),
         [9, 10, 11, 12]),
        ("new task (samples, re-adapts)", lambda _: pg.new_task_button.click(), [None]),
        ("steps with a full redraw instead of blitting (for comparison)", full_redraw,
         [9, 10, 11, 12]),
    ]
    rows = []
    load = os.getloadavg()[0]
    for name, move, values in cases:
        median, p90, fastest = time_moves(move, values, args.repeats)
        rows.append((name, median, p90, fastest))
        print(f"{name}: median {median:.1f} ms, p90 {p90:.1f} ms, min {fastest:.1f} ms")
    load = max(load, os.getloadavg()[0])

    worst = max(row[1] for row in rows[:4])
    worst_min = max(row[3] for row in rows[:4])
    verdict = "meets" if worst <= TARGET_MS else "MISSES"
    lines = [
        "## Playground latency (`minimaml.widgets`)",
        "",
        "Slider change → updated figure (observer, re-adaptation when K or α moves, "
        "line updates, blit, the whole-frame PNG ipympl sends over the comm), in the "
        "kernel process, "
        f"after 10 warm-up moves; {args.repeats} moves per control. The browser's own "
        "paint and the websocket hop are not included.",
        "",
        "| control | median ms | p90 ms | min ms |",
        "|---|---|---|---|",
        *(f"| {name} | {median:.1f} | {p90:.1f} | {fastest:.1f} |"
          for name, median, p90, fastest in rows),
        "",
        f"Target ≤ {TARGET_MS:.0f} ms median: the slowest control's median is "
        f"{worst:.1f} ms, which {verdict} it at this machine load (below). The fastest "
        f"moves of every control (min column, the nearest this shared machine gets to "
        f"an idle one) take at most {worst_min:.1f} ms. First draw (loading parameters, compiling "
        f"the 50-step adaptation once): {first_draw_s:.1f} s. No control recompiles "
        "(tests/test_widgets.py counts compilations).",
        "",
        f"Machine: {machine_description()}; 1-min load average up to {load:.1f} "
        "during the run (other processes share the 2 cores, so absolute times are noisy).",
        "",
        "Command: `python benchmarks/widget_latency.py`",
    ]
    text = "\n".join(lines)
    if not args.no_write:
        write_section("widget_latency", text)
        print("wrote the widget_latency section of BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
