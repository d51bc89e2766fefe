"""The chapters' self-checking exercises: stubs say "not yet", solutions say "correct".

Every chapter source (notebooks/src) ends with cells tagged ``exercise``: a stub that
raises NotImplementedError, then a ``check_…`` call. Each such cell is run here as it
stands (in a fresh namespace, as a reader's kernel would) and must print "not yet" and
raise nothing. The same cells in notebooks/solutions/src hold solutions and must print
"correct". Every check in ``minimaml.exercises`` is used by some solution, and every
mistake it knows earns its own hint, not a traceback.
"""
import contextlib
import io
import pathlib
import re

import numpy as np
import pytest

from minimaml.exercises import CHAPTERS, all_exercises
from minimaml.exercises.harness import CORRECT, NOT_YET, WRONG, Case, Exercise

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTER_SOURCES = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
SOLUTION_SOURCES = sorted((ROOT / "notebooks" / "solutions" / "src").glob("[0-9][0-9]_*.py"))
CHECK_CALL = re.compile(r"^(check_\w+)\(", re.MULTILINE)


def exercise_cells(source):
    """The code of every cell tagged ``exercise`` in a percent-format source."""
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(source, fmt="py:percent")
    return [c.source for c in nb.cells
            if c.cell_type == "code" and "exercise" in c.metadata.get("tags", [])]


def run_cell(code, name):
    """Exec one cell in a fresh namespace; return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
    return out.getvalue()


def _cells(sources):
    return [pytest.param(code, id=f"{src.stem}-{CHECK_CALL.search(code).group(1)}")
            for src in sources for code in exercise_cells(src)]


def test_every_chapter_ends_with_two_to_four_exercises_each_with_a_solution():
    solved = {CHECK_CALL.search(code).group(1)
              for src in SOLUTION_SOURCES for code in exercise_cells(src)}
    for src in CHAPTER_SOURCES:
        chapter = int(src.name[:2])
        cells = exercise_cells(src)
        if chapter == 0 or (chapter == 6 and not cells):   # start page; chapter 6: its own rewrite
            continue
        assert 2 <= len(cells) <= 4, f"{src.name}: {len(cells)} exercise cells"
        for code in cells:
            assert "raise NotImplementedError" in code, f"{src.name}: a stub must start untouched"
            assert CHECK_CALL.search(code).group(1) in solved, f"{src.name}: no solution for {code[:60]}"
    # Every check in the library is used by a solution (chapter 6's included).
    assert set(all_exercises()) <= solved, set(all_exercises()) - solved


@pytest.mark.slow
@pytest.mark.parametrize("code", _cells(CHAPTER_SOURCES))
def test_untouched_stub_says_not_yet(code):
    printed = run_cell(code, "stub")
    assert printed.strip().splitlines()[-1].startswith(f"… {NOT_YET}:"), printed


@pytest.mark.slow
@pytest.mark.parametrize("code", _cells(SOLUTION_SOURCES))
def test_solution_passes_its_check(code):
    printed = run_cell(code, "solution")
    assert printed.strip().splitlines()[-1].startswith(f"✓ {CORRECT}:"), printed


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(all_exercises()))
def test_every_known_mistake_gets_its_hint(name):
    exercise = all_exercises()[name]
    for wrong, hint in exercise.mistakes:
        result = exercise.grade(wrong, seed=1)
        assert result.status == WRONG and hint in result.message, (hint, result)


def _square(x):
    return x * x


SQUARE = Exercise("square", _square, lambda rng: [Case((np.float32(rng.normal()),), "a number")],
                  mistakes=[(lambda x: 2 * x, "that is the derivative")])


def test_a_failing_function_gets_one_line_and_no_traceback(capsys):
    def broken(x):
        return x.no_such_attribute

    SQUARE(broken)
    printed = capsys.readouterr().out
    assert printed.startswith("✗ wrong: square raised AttributeError") and "Traceback" not in printed
    assert SQUARE.grade(lambda x: None).message.startswith("square returned None")
    assert SQUARE.grade("square").status == WRONG                 # not a function
    assert SQUARE.grade(lambda x: 2 * x).message.startswith("that is the derivative")
    assert "differs" in SQUARE.grade(lambda x: x + 1).message
    assert SQUARE.grade(_square).passed and SQUARE.last.passed


def test_every_chapter_module_is_listed():
    modules = {p.stem for p in (ROOT / "minimaml" / "exercises").glob("*.py")} - {"__init__", "harness"}
    assert modules == set(CHAPTERS.values())


@pytest.mark.parametrize("source", SOLUTION_SOURCES, ids=lambda p: p.stem)
def test_committed_solution_notebook_is_built_from_its_source_and_ran(source):
    nbformat = pytest.importorskip("nbformat")
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
    build_notebooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_notebooks)
    path = source.parents[1] / f"{source.stem}.ipynb"
    assert path.exists(), f"run: python scripts/build_notebooks.py --solutions --execute {source.stem[:2]}"
    committed = nbformat.read(path, as_version=4)
    code = lambda nb: [c.source for c in nb.cells if c.cell_type == "code"]
    assert code(committed) == code(build_notebooks.build(source)), "rebuild it: --solutions --execute"
    for cell in committed.cells:
        if "exercise" in cell.metadata.get("tags", []):
            printed = "".join(out.get("text", "") for out in cell.outputs)
            assert f"✓ {CORRECT}:" in printed, (path.name, printed)
