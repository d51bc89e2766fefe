"""Build the course notebooks from their sources, run them, and keep their JSON clean.

Each chapter is written as a plain Python file in ``notebooks/src/`` in the "percent"
format (``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose lines
start with ``# ``; ``# %% tags=["parameters"]`` tags a cell). This script turns them
into ``notebooks/*.ipynb``:

    python scripts/build_notebooks.py 05 --force        # build, no outputs (replaces a run's)
    python scripts/build_notebooks.py 03 --execute      # build, run at full size, commit-ready
    python scripts/build_notebooks.py --clean-only 03   # strip noise from an .ipynb run in Lab
    python scripts/build_notebooks.py --sync-markdown 03  # prose edits only: keep the run's outputs

Executing uses papermill with the notebook's own (full-size) parameters, in a fresh
kernel started in ``notebooks/``. The result is cleaned (no papermill/timing metadata,
no kernel version noise, fixed cell ids) and refused if it holds an error output or
is larger than ``--max-mb``.
"""
import argparse
import ast
import html
import pathlib
import re
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
_MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


def parse_percent(text):
    """Split a percent-format script into ``[(cell_type, source, tags), ...]``."""
    cells, kind, tags, lines = [], None, [], []

    def flush():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", line) for line in body.splitlines())
        if body.strip():
            cells.append((kind, body, tags))

    for line in text.splitlines():
        match = _MARKER.match(line)
        if match:
            flush()
            kind = "markdown" if match["markdown"] else "code"
            tags = ast.literal_eval(match["tags"]) if match["tags"] else []
            lines = []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(source_path):
    """A fresh, unexecuted notebook from one percent-format source file."""
    nb = nbformat.v4.new_notebook()
    for i, (kind, body, tags) in enumerate(parse_percent(source_path.read_text())):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(body)
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
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
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:02d}"
    nb.cells = cells
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


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
    parser.add_argument("--force", action="store_true",
                        help="without --execute: overwrite a notebook that holds outputs")
    parser.add_argument("--max-mb", type=float, default=1.5)
    args = parser.parse_args(argv)

    if args.clean_only:
        paths = sorted(p for p in NOTEBOOKS.glob("*.ipynb")
                       if not args.names or p.name.startswith(tuple(args.names)))
        for path in paths:
            nb = clean(nbformat.read(path, as_version=4))
            size = check_clean(nb, path.name, args.max_mb)
            nbformat.write(nb, path)
            print(f"cleaned {path.name} ({size:.2f} MB)")
        return 0

    sources = sorted(p for p in SOURCES.glob("[0-9][0-9]_*.py")
                     if not args.names or p.name.startswith(tuple(args.names)))
    if not sources:
        print(f"no sources match {args.names} in {SOURCES}", file=sys.stderr)
        return 2
    for src in sources:
        path = NOTEBOOKS / (src.stem + ".ipynb")
        if args.sync_markdown:
            print(f"{path.name}: {sync_markdown(src, path)} markdown cells updated")
            continue
        if not args.execute and not args.force and path.exists() and _has_outputs(path):
            print(f"skipped {path.name}: it holds outputs of a run (use --execute, or --force)")
            continue
        nb = build(src)
        nbformat.write(nb, path)
        if args.execute:
            nb = clean(execute(path))
            size = check_clean(nb, path.name, args.max_mb)
            nbformat.write(nb, path)
            print(f"executed {path.name} ({size:.2f} MB)")
        else:
            print(f"built {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
