"""Widget latency: a control moves -> the new pixels, in the kernel and in a real browser.

In the kernel: everything a move costs there (the observer, re-adapting the networks
when K or α changes, the new line data; with ``renderer="ipympl"`` also the blit and
the whole-frame PNG handed to the comm), for the playground, both renderers.

In the browser (``--browser``): JupyterLab + Chromium (Playwright), one notebook with
every widget; for each control, key presses on the slider (or clicks), each timed in
the page from the input event to the paint after the last pixel change it caused
(``benchmarks/browser_lab.py`` says how), at device pixel ratio 1 and 2, with the
split: input → websocket out, → the last frame in, → DOM/canvas change, → painted.

    python benchmarks/widget_latency.py                  # in-kernel only
    python benchmarks/widget_latency.py --browser        # both; writes BENCHMARKS.md
    python benchmarks/widget_latency.py --browser --no-write --moves 10
"""
import argparse
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.report import machine_description, write_section  # noqa: E402

TARGET_MS = 30.0          # in the kernel
BROWSER_TARGET = {1: (50.0, 100.0), 2: (100.0, None)}   # ratio: (median, p90) ms

# (widget, the cell that makes it, [(control label, css of the control, how to move it)])
WIDGETS = [
    ("playground (ipympl)", "from minimaml.widgets import playground\n"
     "playground(seed=0, renderer='ipympl')",
     [("K", "shots", "keys"), ("α", "inner-lr", "keys"), ("steps", "steps", "keys"),
      ("new task", "new-task", "click")]),
    ("playground", "from minimaml.widgets import playground\nplayground(seed=0)",
     [("K", "shots", "keys"), ("α", "inner-lr", "keys"), ("steps", "steps", "keys"),
      ("new task", "new-task", "click")]),
    ("second-order explorer (ch. 2)",
     "from minimaml.widgets import second_order_explorer\nsecond_order_explorer()",
     [("α", "inner-lr", "keys"), ("θ", "theta", "toggle"), ("new tasks", "new-tasks", "click")]),
    ("meta-training scrubber (ch. 3)",
     "from minimaml.widgets import meta_training_scrubber\nmeta_training_scrubber()",
     [("snapshot", "snapshot", "keys"), ("new task", "new-task", "click")]),
    ("first vs second order (ch. 5)",
     "from minimaml.widgets import first_vs_second_order\nfirst_vs_second_order()",
     [("K", "shots", "keys"), ("α", "inner-lr", "keys"), ("steps", "steps", "keys"),
      ("new task", "new-task", "click")]),
    ("Omniglot adaptation (ch. 6)",
     "from minimaml.widgets import omniglot_adaptation\nomniglot_adaptation()",
     [("α", "inner-lr", "keys"), ("steps", "steps", "keys"), ("new task", "new-task", "click")]),
]



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


def in_kernel(repeats):
    """In-kernel latency of the playground's controls, both renderers."""
    import minimaml.widgets.frames  # noqa: F401  (imports are not part of the first draw)
    import minimaml.widgets.playground_ipympl  # noqa: F401
    from minimaml.widgets import playground

    rows, first = [], {}
    for renderer in ("browser", "ipympl"):
        start = time.perf_counter()
        pg = playground(seed=0, renderer=renderer)
        first[renderer] = time.perf_counter() - start
        if renderer == "ipympl":
            pg.drawing.canvas.syncing_data_url = False

        def set_value(slider):
            return lambda value: setattr(slider, "value", value)
        cases = [("K (re-adapts 3 networks, 50 steps each)", set_value(pg.shots_slider),
                  [9, 10, 11, 12]),
                 ("α (re-adapts 3 networks)", set_value(pg.inner_lr_slider),
                  [0.0089, 0.01, 0.0112]),
                 ("steps / play (indexes the stored trajectory)", set_value(pg.steps_slider),
                  [9, 10, 11, 12]),
                 ("new task (samples, re-adapts)", lambda _: pg.new_task_button.click(), [None])]
        for name, move, values in cases:
            load = os.getloadavg()[0]
            median, p90, fastest = time_moves(move, values, repeats)
            rows.append((renderer, name, median, p90, fastest, max(load, os.getloadavg()[0])))
            print(f"kernel {renderer} {name}: median {median:.1f} ms, p90 {p90:.1f} ms, "
                  f"min {fastest:.1f} ms", flush=True)
    return rows, first


def browser(moves, ratios):
    """Browser latency rows: (widget, control, ratio, stats dict, load)."""
    import tempfile

    import nbformat
    from playwright.sync_api import expect, sync_playwright

    from benchmarks import browser_lab as lab

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="widget_latency_"))
    notebooks = tmp / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(cell) for _, cell, _ in WIDGETS]
    nbformat.write(nb, notebooks / "latency.ipynb")
    rows = []
    with lab.server("lab", notebooks, tmp / "home", "latency.ipynb") as (base, token, url), \
            sync_playwright() as p:
        browser_ = lab.launch(p)
        for ratio in ratios:
            page = lab.open_page(browser_, url, pixel_ratio=ratio, timeout_s=300)
            lab.run_all_in_lab(page, base, token, timeout_s=300)   # fresh widgets per page
            widget_roots = page.locator(".minimaml-live")
            expect(widget_roots).to_have_count(len(WIDGETS), timeout=600_000)
            expect(page.locator(".minimaml-compiling")).to_have_count(0, timeout=600_000)
            lab.wait_for(lambda: not lab.kernel_busy(base, token), "the cells to finish",
                         timeout=600)
            time.sleep(2)
            for index, (widget, _, controls) in enumerate(WIDGETS):
                root = widget_roots.nth(index)
                root.scroll_into_view_if_needed()
                for label, css, how in controls:
                    stats = _move_many(page, root, css, how, moves, lab)
                    load = os.getloadavg()[0]
                    rows.append((widget, label, ratio, stats, load))
                    print(f"browser ratio {ratio} {widget} {label}: figure median "
                          f"{stats['figure_median']:.0f} p90 {stats['figure_p90']:.0f} ms; "
                          f"all median {stats['median']:.0f} p90 {stats['p90']:.0f} ms "
                          f"(n={stats['n']}, load {load:.1f})", flush=True)
            page.context.close()
        browser_.close()
    return rows


def _move_many(page, root, css, how, moves, lab):
    control = root.locator(f".minimaml-{css}").first
    results = []
    for i in range(moves):
        if how == "keys":
            handle = control.locator(".noUi-handle").first
            handle.focus()
            key = "ArrowRight" if i % 2 == 0 else "ArrowLeft"
            result = lab.measure_move(page, lambda: handle.press(key))
        elif how == "toggle":
            buttons = control.locator("button")
            target = buttons.nth((i + 1) % buttons.count())
            result = lab.measure_move(page, lambda: target.click())
        else:
            result = lab.measure_move(page, lambda: control.click())
        if result is not None:
            results.append(result)
    latency = np.array([r["latency"] for r in results])
    figure = np.array([r["figure"] for r in results])
    stats = {"n": len(results), "median": float(np.median(latency)),
             "p90": float(np.percentile(latency, 90)),
             "figure_median": float(np.nanmedian(figure)) if np.isfinite(figure).any() else float("nan"),
             "figure_p90": float(np.nanpercentile(figure, 90)) if np.isfinite(figure).any() else float("nan")}
    for part in ("sent", "arrived", "render", "paint"):
        stats[part] = float(np.nanmedian([r[part] for r in results]))
    return stats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100, help="in-kernel moves per control")
    parser.add_argument("--browser", action="store_true", help="also measure in Chromium")
    parser.add_argument("--moves", type=int, default=30, help="browser moves per control")
    parser.add_argument("--ratios", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    kernel_rows, first = in_kernel(args.repeats)
    browser_rows = browser(args.moves, args.ratios) if args.browser else []
    load_after = os.getloadavg()
    text = report(args, kernel_rows, first, browser_rows, load_before, load_after)
    print(text)
    if not args.no_write:
        write_section("widget_latency", text)
        print("wrote the widget_latency section of BENCHMARKS.md")
    return 0


def report(args, kernel_rows, first, browser_rows, load_before, load_after):
    from benchmarks.browser_lab import CHROMIUM
    lines = ["## Widget latency (`minimaml.widgets`)", ""]
    if browser_rows:
        lines += [
            "### In the browser: input event → changed pixels on screen",
            "",
            "JupyterLab + headless Chromium on this machine, one notebook holding every "
            f"widget; {args.moves} moves per control (arrow-key presses on the slider, "
            "alternating, or clicks), each timed in the page from the input event to the "
            "paint after the last change it caused (`benchmarks/browser_lab.py`). "
            "*figure*: until the panels show the move; *all*: until the text readouts "
            "(sent by the kernel) do too. Split of *all* (medians): *out* = input → "
            "websocket frame sent; *in* = input → the last frame received before the last "
            "change (kernel work + comm both ways); *render* = that frame → DOM/canvas "
            "change; *paint* = change → painted. "
            f"Target: median ≤ {BROWSER_TARGET[1][0]:.0f} ms and p90 ≤ "
            f"{BROWSER_TARGET[1][1]:.0f} ms at pixel ratio 1, median ≤ "
            f"{BROWSER_TARGET[2][0]:.0f} ms at ratio 2. 1-min load average beside each row "
            "(2 cores, shared).",
            "",
            "| widget | control | pixel ratio | figure median ms | figure p90 ms | all median ms | all p90 ms | out | in | render | paint | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for widget, label, ratio, s, load in browser_rows:
            lines.append(f"| {widget} | {label} | {ratio:g} | {s['figure_median']:.0f} | "
                         f"{s['figure_p90']:.0f} | {s['median']:.0f} | "
                         f"{s['p90']:.0f} | {s['sent']:.0f} | {s['arrived']:.0f} | "
                         f"{s['render']:.0f} | {s['paint']:.0f} | {load:.1f} |")
        lines += ["", verdict(browser_rows), ""]
    lines += [
        "### In the kernel (the playground)",
        "",
        "Control change → the widget's new state handed to the comm, in the kernel "
        f"process, after 10 warm-up moves; {args.repeats} moves per control. browser: the "
        "new numbers (a steps move sends nothing to draw: the browser picks the frame); "
        "ipympl: also the blit and the whole-frame PNG.",
        "",
        "| renderer | control | median ms | p90 ms | min ms | load |",
        "|---|---|---|---|---|---|",
        *(f"| {r} | {name} | {median:.1f} | {p90:.1f} | {fastest:.1f} | {load:.1f} |"
          for r, name, median, p90, fastest, load in kernel_rows),
        "",
        "First draw in the kernel (building the widget, loading θ, compiling the 50-step "
        "fine-tuning, the first numbers), after the imports: "
        + ", ".join(f"{r} {s:.1f} s" for r, s in first.items()) + " (the first one made "
        "compiles; the second reuses the compiled fine-tuning); the widget shows its "
        "\"compiling…\" line before that work starts. No control recompiles "
        "(tests/test_widgets.py counts compilations).",
        "",
        f"Machine: {machine_description()}; Chromium: {chromium_version(CHROMIUM)}; "
        f"{package_versions()}. Load average (1, 5, 15 min) before: "
        f"{', '.join(f'{v:.2f}' for v in load_before)}, after: "
        f"{', '.join(f'{v:.2f}' for v in load_after)}.",
        "",
        "Command: `python benchmarks/widget_latency.py"
        f"{' --browser' if browser_rows else ''}`",
    ]
    return "\n".join(lines)


def verdict(rows):
    misses = []
    for widget, label, ratio, s, load in rows:
        median_target, p90_target = BROWSER_TARGET[int(ratio)] if int(ratio) in BROWSER_TARGET \
            else (None, None)
        if median_target and s["figure_median"] > median_target \
                or p90_target and s["figure_p90"] > p90_target:
            misses.append(f"{widget} {label} at ratio {ratio:g}")
    renderers = (" Rows marked (ipympl) use matplotlib's renderer (`playground(renderer="
                 "'ipympl')`), measured for comparison; every widget draws in the browser by "
                 "default.")
    if not misses:
        return "Every control's figure meets the target at the load shown." + renderers
    return (f"Figure latency: {len(rows) - len(misses)} of {len(rows)} rows meet the target "
            f"at the load shown; these miss it: " + "; ".join(misses) + "." + renderers)


def chromium_version(path):
    import subprocess
    try:
        return subprocess.run([path, "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip().splitlines()[-1]
    except Exception as err:  # noqa: BLE001 (only for the report line)
        return f"unknown ({type(err).__name__})"


def package_versions():
    from importlib.metadata import version
    names = ("jupyterlab", "ipywidgets", "anywidget", "ipympl", "matplotlib", "playwright")
    return ", ".join(f"{n} {version(n)}" for n in names)


if __name__ == "__main__":
    sys.exit(main())
