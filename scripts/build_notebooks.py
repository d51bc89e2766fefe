"""Build the course notebooks from their sources, run them, and keep their JSON clean.

Each chapter is written as a plain Python file in ``notebooks/src/`` in jupytext's
"percent" format (``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose
lines start with ``# ``; ``# %% tags=["parameters"]`` tags a cell). jupytext turns them
into ``notebooks/*.ipynb``; this script adds the cleaning and the full-size runs:

    python scripts/build_notebooks.py 05 --force        # build, no outputs (replaces a run's)
    python scripts/build_notebooks.py 03 --execute      # build, run at full size, commit-ready
    python scripts/build_notebooks.py --clean-only 03   # strip noise from an .ipynb run in Lab
    python scripts/build_notebooks.py --sync-markdown 03  # prose edits only: keep the run's outputs
    python scripts/build_notebooks.py --colab-cell      # refresh every chapter's Colab setup cell
    python scripts/build_notebooks.py --solutions --execute   # the exercises' solutions, run

The exercises' solutions are built the same way, from ``notebooks/solutions/src/`` into
``notebooks/solutions/`` (``--solutions``). A full-size ``--execute`` of a chapter
records its wall time and machine in ``notebooks/run_times.json``, which chapter 0's
chapter map shows.

Executing uses papermill with the notebook's own (full-size) parameters, in a fresh
kernel started in ``notebooks/``. The result is cleaned (no papermill/timing metadata,
no kernel version noise, fixed cell ids) and refused if it holds an error output or
is larger than ``--max-mb``.

Every chapter starts with a Colab setup cell (see ``colab_cell``): on Colab it installs
minimaml from the repository named in ``pyproject.toml``'s ``[project.urls]``; anywhere
else it does nothing. ``--colab-cell`` writes it into the sources and, without running
anything, into the committed notebooks (their other cells and outputs are kept as they are).
"""
import argparse
import html
import json
import pathlib
import re
import sys

import jupytext
import nbformat

try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
SOLUTIONS = NOTEBOOKS / "solutions"
RUN_TIMES = NOTEBOOKS / "run_times.json"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

# The Colab cell is left out of the course website (readers there have the launch menu).
COLAB_TAGS = ["remove-cell"]
COLAB_MARKER = "# %% tags=" + json.dumps(COLAB_TAGS)
COLAB_FIRST_LINE = "# Colab only: install minimaml"
COLAB_CELL = """\
{first_line} and enable ipympl's widgets (MINIMAML_INSTALL_FROM=<pip source> forces it elsewhere).
import os, subprocess, sys
if "google.colab" in sys.modules or "MINIMAML_INSTALL_FROM" in os.environ:
    source = os.environ.get("MINIMAML_INSTALL_FROM", "git+{repository}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"minimaml[{extras}] @ {{source}}"], check=True)
    if "google.colab" in sys.modules: from google.colab import output; output.enable_custom_widget_manager()"""
_IMPORTS_OMNIGLOT = re.compile(
    r"^\s*(from minimaml import .*\bomniglot\b|from minimaml\.omniglot import|import minimaml\.omniglot)",
    re.MULTILINE)


def repository_url():
    """The repository's address: ``[project.urls] Repository`` in pyproject.toml, its one home."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        urls = tomllib.load(f)["project"].get("urls", {})
    if not urls.get("Repository"):
        raise SystemExit("pyproject.toml: [project.urls] has no Repository entry")
    return urls["Repository"].rstrip("/")


def colab_cell(source_text, repository=None):
    """The setup cell for the chapter whose source is ``source_text``: on Colab (or with
    MINIMAML_INSTALL_FROM set) it pip-installs minimaml with the extras the chapter
    needs; anywhere else it does nothing."""
    extras = ["notebooks"] + (["omniglot"] if _IMPORTS_OMNIGLOT.search(source_text) else [])
    return COLAB_CELL.format(first_line=COLAB_FIRST_LINE, extras=",".join(extras),
                             repository=repository or repository_url())


def with_colab_cell(source_text, repository=None):
    """``source_text`` whose first cell is the current Colab cell (replaced or inserted)."""
    body = source_text
    if source_text.startswith(f"{COLAB_MARKER}\n{COLAB_FIRST_LINE}"):
        next_cell = source_text.find("\n# %%")
        body = source_text[next_cell + 1:] if next_cell >= 0 else ""
    return f"{COLAB_MARKER}\n{colab_cell(body, repository)}\n\n{body}"


def insert_colab_cell(nb, cell_source):
    """Put ``cell_source`` first in ``nb`` (replacing an older Colab cell), touching no other cell."""
    first = nb.cells[0] if nb.cells else None
    if first is not None and first.cell_type == "code" and first.source.startswith(COLAB_FIRST_LINE):
        first.source = cell_source
    else:
        cell = nbformat.v4.new_code_cell(cell_source)
        cell.metadata["tags"] = list(COLAB_TAGS)
        nb.cells.insert(0, cell)
    _number_cells(nb)
    return nb


def build(source_path):
    """A fresh, unexecuted notebook from one percent-format source file (blank cells dropped)."""
    nb = jupytext.read(source_path, fmt="py:percent")
    nb.cells = [cell for cell in nb.cells if cell.source.strip()]
    return clean(nb)


def _widget_text(model_id, state):
    """A text rendering of a widget's saved final state (tqdm bars: "MAML: 100%|████| 70000/70000 ...")."""
    model = state.get(model_id, {})
    kind, values = model.get("model_name", ""), model.get("state", {})
    if kind == "HBoxModel":
        parts = [_widget_text(ref.removeprefix("IPY_MODEL_"), state) for ref in values.get("children", [])]
        return "".join(parts)
    if kind == "HTMLModel":
        return html.unescape(values.get("value", "")).replace("\u2007", " ")
    if kind == "FloatProgressModel" or kind == "IntProgressModel":
        done = values.get("value", 0) / max(values.get("max", 1), 1e-12)
        return "|" + "█" * round(10 * done) + " " * (10 - round(10 * done)) + "|"
    return ""


def clean(nb):
    """Strip run-to-run noise: papermill/timing metadata, kernel versions, random cell ids.

    Widget outputs (tqdm's progress bars) keep their saved state for JupyterLab, and
    their plain-text fallback is set to the widget's final state, so that viewers that
    cannot run widgets (GitHub, nbviewer, a terminal) show "100%" rather than "0%".
    """
    widget_state = (nb.metadata.get("widgets", {})
                    .get("application/vnd.jupyter.widget-state+json", {}).get("state", {}))
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            text = view and _widget_text(view.get("model_id"), widget_state)
            if text:
                out["data"]["text/plain"] = text
    nb.metadata = nbformat.from_dict({
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
        **({"widgets": nb.metadata["widgets"]} if "widgets" in nb.metadata else {}),
    })
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            continue
        cell.metadata = nbformat.from_dict({"tags": tags} if tags else {})
        cells.append(cell)
    nb.cells = cells
    _number_cells(nb)
    return nb


def _number_cells(nb):
    """Cell ids by position (``cell-00``, ...), so that a rebuild does not change them."""
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"
    nb.nbformat, nb.nbformat_minor = 4, 5


def check_clean(nb, name, max_mb):
    """Raise if the executed notebook holds an error output or is too large to commit."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise RuntimeError(f"{name}: cell {cell.id} has an error output: {out.get('ename')}")
    size = len(nbformat.writes(nb).encode()) / 2**20
    if size > max_mb:
        raise RuntimeError(f"{name}: {size:.2f} MB is over --max-mb {max_mb}")
    return size


def execute(path, parameters=None):
    """Run ``path`` top to bottom in a fresh kernel (papermill); return the executed notebook."""
    import tempfile

    import papermill

    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / path.name
        papermill.execute_notebook(str(path), str(out), parameters=parameters or {},
                                   cwd=str(path.parent), kernel_name="python3",
                                   progress_bar=False)
        return nbformat.read(out, as_version=4)


def sync_markdown(source_path, path):
    """Copy markdown cells from the source into ``path``, whose code cells must match it."""
    fresh, nb = build(source_path), nbformat.read(path, as_version=4)
    code = lambda cells: [c.source for c in cells if c.cell_type == "code"]
    if ([c.cell_type for c in fresh.cells] != [c.cell_type for c in nb.cells]
            or code(fresh.cells) != code(nb.cells)):
        raise RuntimeError(f"{path.name}: code cells differ from the source; rerun with --execute")
    changed = 0
    for new, old in zip(fresh.cells, nb.cells):
        if new.cell_type == "markdown" and new.source != old.source:
            old.source, changed = new.source, changed + 1
    if changed:
        nbformat.write(nb, path)
    return changed


def record_run_time(name, seconds, path=RUN_TIMES):
    """Keep a chapter's full-size run time, with the machine it ran on, in ``path`` (JSON)."""
    import datetime
    import os

    sys.path.insert(0, str(ROOT))
    from benchmarks.report import cpu_model

    cpu = cpu_model()
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        load = "unknown"
    times = json.loads(path.read_text()) if path.exists() else {}
    times[name] = {"seconds": round(seconds, 1), "machine": f"{cpu}, {os.cpu_count()} cores",
                   "load_after": load, "date": datetime.date.today().isoformat()}
    path.write_text(json.dumps(dict(sorted(times.items())), indent=1) + "\n")


def _has_outputs(path):
    nb = nbformat.read(path, as_version=4)
    return any(cell.get("outputs") for cell in nb.cells)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="chapter prefixes, e.g. 01 03 (default: all)")
    parser.add_argument("--execute", action="store_true", help="run at full size, keep outputs")
    parser.add_argument("--clean-only", action="store_true",
                        help="only clean the existing .ipynb files (e.g. after a run in Lab)")
    parser.add_argument("--sync-markdown", action="store_true",
                        help="copy markdown cells from the source into the executed notebook; "
                             "refuses if any code cell differs (then rerun with --execute)")
    parser.add_argument("--colab-cell", action="store_true",
                        help="write the current Colab setup cell first in each source and "
                             "committed notebook (runs nothing; other cells stay as they are)")
    parser.add_argument("--force", action="store_true",
                        help="without --execute: overwrite a notebook that holds outputs")
    parser.add_argument("--solutions", action="store_true",
                        help="the exercises' solutions (notebooks/solutions/src) instead of the chapters")
    parser.add_argument("--max-mb", type=float, default=1.5)
    args = parser.parse_args(argv)
    sources_dir, out_dir = (SOLUTIONS / "src", SOLUTIONS) if args.solutions else (SOURCES, NOTEBOOKS)

    if args.clean_only:
        paths = sorted(p for p in out_dir.glob("*.ipynb")
                       if not args.names or p.name.startswith(tuple(args.names)))
        for path in paths:
            nb = clean(nbformat.read(path, as_version=4))
            size = check_clean(nb, path.name, args.max_mb)
            nbformat.write(nb, path)
            print(f"cleaned {path.name} ({size:.2f} MB)")
        return 0

    sources = sorted(p for p in sources_dir.glob("[0-9][0-9]_*.py")
                     if not args.names or p.name.startswith(tuple(args.names)))
    if args.execute and not args.solutions:
        # chapter 0's map shows every chapter's recorded run time: run it after the others
        sources.sort(key=lambda p: p.name.startswith("00_"))
    if not sources:
        print(f"no sources match {args.names} in {sources_dir}", file=sys.stderr)
        return 2
    for src in sources:
        path = out_dir / (src.stem + ".ipynb")
        if args.colab_cell:
            text = with_colab_cell(src.read_text())
            src.write_text(text)
            if path.exists():
                nbformat.write(insert_colab_cell(nbformat.read(path, as_version=4),
                                                 colab_cell(text)), path)
            print(f"{src.name}, {path.name}: Colab cell written")
            continue
        if args.sync_markdown:
            print(f"{path.name}: {sync_markdown(src, path)} markdown cells updated")
            continue
        if not args.execute and not args.force and path.exists() and _has_outputs(path):
            print(f"skipped {path.name}: it holds outputs of a run (use --execute, or --force)")
            continue
        nb = build(src)
        nbformat.write(nb, path)
        if args.execute:
            import time
            start = time.perf_counter()
            nb = clean(execute(path))
            seconds = time.perf_counter() - start
            size = check_clean(nb, path.name, args.max_mb)
            nbformat.write(nb, path)
            if not args.solutions:
                record_run_time(src.stem, seconds)
            print(f"executed {path.name} in {seconds:.0f} s ({size:.2f} MB)")
        else:
            print(f"built {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
