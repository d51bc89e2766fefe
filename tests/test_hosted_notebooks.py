"""Running the chapters elsewhere: the Colab setup cell and Binder's environment.yml.

- Every chapter (source and committed notebook) starts with the Colab cell that
  ``scripts/build_notebooks.py --colab-cell`` builds from ``[project.urls]`` today.
- Outside Colab the cell does nothing: no output, no pip.
- "On Colab" (a stand-in ``google.colab`` module, MINIMAML_INSTALL_FROM pointing at this
  checkout) the cell pip-installs minimaml into a fresh virtual environment where it was
  not importable before, and turns on the custom widget manager.
- What each chapter imports (directly, or through the minimaml modules it uses) is
  installed by the core dependencies plus the extras its Colab cell names, and plus the
  extras environment.yml names for Binder.
"""
import ast
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import venv

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted((NOTEBOOKS / "src").glob("[0-9][0-9]_*.py"))


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  ROOT / "scripts" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _builder()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _cell_extras(cell_source):
    """The extras a Colab cell installs, read from its pip argument ``minimaml[a,b] @ ...``."""
    (spec,) = [s for s in ast.walk(ast.parse(cell_source)) if isinstance(s, ast.JoinedStr)]
    text = "".join(part.value for part in spec.values if isinstance(part, ast.Constant))
    return set(Requirement(text.split("@")[0].strip()).extras)


# --- the cell in every chapter -------------------------------------------------------------

@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_chapter_starts_with_the_current_colab_cell(source):
    expected = builder.colab_cell(source.read_text())
    assert builder.repository_url() in expected
    fix = "run: python scripts/build_notebooks.py --colab-cell"
    first = builder.build(source).cells[0]
    assert (first.cell_type, first.source, first.metadata.get("tags")) == (
        "code", expected, builder.COLAB_TAGS), f"{source.name}: Colab cell out of date; {fix}"
    committed = nbformat.read(NOTEBOOKS / f"{source.stem}.ipynb", as_version=4).cells[0]
    assert (committed.source, committed.outputs) == (expected, []), \
        f"{source.stem}.ipynb: Colab cell out of date; {fix}"


def test_only_the_omniglot_chapter_installs_the_omniglot_extra():
    extras = {s.stem: _cell_extras(builder.colab_cell(s.read_text())) for s in SOURCES}
    assert all("notebooks" in e for e in extras.values())
    assert {name for name, e in extras.items() if "omniglot" in e} == {"06_omniglot"}


def _run_cell(python, cell, env):
    """Run the cell's code as a kernel would, from the cell's folder (not this checkout)."""
    harness = "import sys; exec(compile(open(sys.argv[1]).read(), 'colab-cell', 'exec'), {})"
    return subprocess.run([str(python), "-c", harness, str(cell)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=cell.parent)


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MINIMAML_INSTALL_FROM", "VIRTUAL_ENV")}
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


def test_colab_cell_does_nothing_outside_colab(tmp_path):
    cell = tmp_path / "cell.py"
    # A subprocess module that fails if called: the cell must not reach pip.
    (tmp_path / "subprocess.py").write_text(
        "def run(*args, **kwargs):\n    raise SystemExit('the Colab cell called pip outside Colab')\n")
    cell.write_text(builder.colab_cell((SOURCES[0]).read_text()))
    result = _run_cell(sys.executable, cell, _clean_env(PYTHONPATH=str(tmp_path)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def _fresh_venv_with_our_dependencies(path):
    """A new virtual environment without minimaml that sees this environment's other packages
    (so pip finds the dependencies installed and only builds minimaml itself)."""
    venv.create(path, with_pip=False)
    python = path / "bin" / "python"
    deps = path.parent / "deps"
    deps.mkdir()
    for site_dir in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for entry in pathlib.Path(site_dir).iterdir():
            name = entry.name.lower()
            if (name.startswith(("minimaml", "__editable__")) or name.endswith(".pth")
                    or (deps / entry.name).exists()):
                continue
            (deps / entry.name).symlink_to(entry)
    site_packages = subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip()
    (pathlib.Path(site_packages) / "our_dependencies.pth").write_text(f"{deps}\n")
    return python, pathlib.Path(site_packages)


def _copy_of_checkout(dest):
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "minimaml", dest / "minimaml",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_colab_cell_installs_minimaml_on_colab(tmp_path):
    python, site_packages = _fresh_venv_with_our_dependencies(tmp_path / "venv")
    probe = [str(python), "-c", "import minimaml, importlib.metadata as md; print(minimaml.__file__);"
             "print(md.distribution('minimaml').read_text('direct_url.json'))"]
    env = _clean_env()
    assert subprocess.run(probe, env=env, capture_output=True, cwd=tmp_path).returncode != 0, \
        "minimaml was importable in the fresh environment before the cell ran"

    # A stand-in for Colab's google.colab.output, recording the widget-manager call.
    colab = tmp_path / "fake_colab" / "google" / "colab"
    colab.mkdir(parents=True)
    (colab.parent / "__init__.py").write_text("")
    (colab / "__init__.py").write_text("")
    marker = tmp_path / "widget_manager_enabled"
    (colab / "output.py").write_text(
        f"def enable_custom_widget_manager():\n    open({str(marker)!r}, 'w').close()\n")
    checkout = _copy_of_checkout(tmp_path / "checkout")
    cell = tmp_path / "cell.py"
    cell.write_text("import google.colab\n" + builder.colab_cell(SOURCES[-1].read_text()))

    result = _run_cell(python, cell, {**env, "PYTHONPATH": str(tmp_path / "fake_colab"),
                                      "MINIMAML_INSTALL_FROM": checkout.as_uri()})
    assert result.returncode == 0, result.stdout + result.stderr
    assert marker.exists(), "the cell did not enable Colab's custom widget manager"

    installed = subprocess.run(probe, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    module_file, direct_url = installed.stdout.strip().split("\n", 1)
    assert pathlib.Path(module_file).is_relative_to(site_packages)
    assert json.loads(direct_url)["url"] == checkout.as_uri()


# --- what the extras install covers what the chapters import --------------------------------

def _imports(tree):
    """Full names of the modules ``tree`` imports (relative ones taken as inside minimaml),
    and of the names ``from minimaml import ...`` takes (some of them are modules)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = ("minimaml" + (f".{node.module}" if node.module else "")) if node.level \
                else node.module
            yield module
            if module == "minimaml":
                yield from (f"minimaml.{alias.name}" for alias in node.names)


def _minimaml_module_file(name):
    """This checkout's file of module ``name`` (``minimaml.x``), or None if it names no module."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _third_party_imports(chapter_source):
    """Top-level third-party modules a chapter imports, directly or through minimaml's modules."""
    trees = []
    for cell in builder.build(chapter_source).cells:
        if cell.cell_type == "code" and "remove-cell" not in cell.metadata.get("tags", []):
            trees.append(ast.parse("\n".join(line for line in cell.source.splitlines()
                                             if not line.lstrip().startswith(("%", "!")))))
    found, seen_files = set(), set()
    while trees:
        for name in _imports(trees.pop()):
            top = name.split(".")[0]
            if top == "minimaml":
                path = _minimaml_module_file(name)
                if path is not None and path not in seen_files:
                    seen_files.add(path)
                    trees.append(ast.parse(path.read_text()))
            elif top not in sys.stdlib_module_names:
                found.add(top)
    return found


def _installed_by(requirements):
    """Canonical names of the distributions that pip would install for ``requirements``,
    read from this environment's installed metadata."""
    todo = [Requirement(r) for r in requirements]
    seen = set()
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue                               # e.g. a dependency for another platform
        for text in dist.requires or []:
            dep = Requirement(text)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e})
                                         for e in (req.extras or {""})):
                todo.append(dep)
    return {name for name, _ in seen}


def _minimaml_requirements(extras):
    optional = PYPROJECT.get("optional-dependencies", {})
    missing = set(extras) - set(optional)
    assert not missing, f"pyproject.toml has no extra {sorted(missing)}"
    return list(PYPROJECT["dependencies"]) + [r for e in sorted(extras) for r in optional[e]]


def _uncovered(chapter_source, extras):
    installed = _installed_by(_minimaml_requirements(extras))
    distributions = importlib.metadata.packages_distributions()
    return {module: distributions.get(module) for module in _third_party_imports(chapter_source)
            if not {canonicalize_name(d) for d in distributions.get(module, [])} & installed}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_colab_cell_installs_what_the_chapter_imports(source):
    extras = _cell_extras(builder.colab_cell(source.read_text()))
    assert _uncovered(source, extras) == {}


def test_binder_environment_installs_the_notebook_extras():
    import yaml

    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    (pip,) = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d]
    local = [line for line in pip if line.replace("-e", "").strip().startswith(".")]
    assert len(local) == 1, f"environment.yml should install this checkout once: {pip}"
    extras = set(Requirement("minimaml" + local[0].replace("-e", "").strip()[1:]).extras)
    assert {"notebooks", "omniglot"} <= extras and "dev" not in extras, extras
    for source in SOURCES:
        assert _uncovered(source, extras) == {}, source.name
    python = next(d for d in environment["dependencies"] if str(d).startswith("python="))
    version = python.split("=")[1]
    assert Requirement(f"python{PYPROJECT['requires-python']}").specifier.contains(version + ".0")
