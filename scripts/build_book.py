"""Build the course website from the committed notebooks, outputs as they are (nothing runs).

    python scripts/build_book.py                  # the site in book/_build/html (make book)
    python scripts/build_book.py --out /tmp/site  # the site in /tmp/site/_build/html

Jupyter Book 1 (Sphinx, myst-nb, sphinx-book-theme) reads book/_config.yml and
book/_toc.yml from the repository root, so that chapter paths, and the Binder/Colab
links built from them, are the notebooks' paths in the repository. Any Sphinx warning
(a broken link, a missing chapter) fails the build.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def html_dir(out):
    return pathlib.Path(out) / "_build" / "html"


def build(out=BOOK):
    """Build the site under ``out``; return its html folder, or raise CalledProcessError."""
    jupyter_book = pathlib.Path(sys.executable).with_name("jupyter-book")
    if not jupyter_book.exists():
        jupyter_book = shutil.which("jupyter-book")
    if not jupyter_book:
        raise FileNotFoundError("jupyter-book is not installed; pip install -e '.[book]'")
    subprocess.run([str(jupyter_book), "build", str(ROOT), "--config", str(BOOK / "_config.yml"),
                    "--toc", str(BOOK / "_toc.yml"), "--path-output", str(out),
                    "--all", "-W", "--keep-going", "-q"], check=True, cwd=ROOT)
    return html_dir(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(BOOK), help="output folder (default: book/)")
    args = parser.parse_args(argv)
    try:
        site = build(args.out)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as err:
        print(f"the book did not build (jupyter-book exited with {err.returncode})", file=sys.stderr)
        return 1
    print(f"site built: {site / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
