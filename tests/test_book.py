"""The course website in a real browser: built as ``make book`` builds it, opened in Chromium.

The site is built once (scripts/build_book.py, into a temporary folder), served on
127.0.0.1 and opened in Debian's Chromium through Playwright. Every page must load with
no console error, no failed local request and no request leaving the machine. Each
chapter page must show as many output images as its notebook holds, render every piece
of its math with MathJax (and leave no raw ``$`` behind), carry Binder and Colab links
built from ``[project.urls]`` in pyproject.toml, and have only internal links that lead
to a page (and anchor) that exists. The front page holds the README's quick start and
links to every chapter; the search page finds a chapter.

With ``CI=true`` a missing Jupyter Book, Chromium or Playwright FAILS the test; elsewhere it skips.
"""
import functools
import http.server
import importlib.util
import os
import pathlib
import threading
try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10
    import tomli as tomllib
import urllib.error
import urllib.parse
import urllib.request

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CHAPTERS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
TIMEOUT_MS = 30_000

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]


def _unavailable(problem):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the book test cannot run: {problem}")
    pytest.skip(problem)


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected_launch_links(chapter):
    """Binder and Colab addresses of a chapter, from pyproject.toml and the book's branch."""
    import yaml

    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    branch = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())["repository"]["branch"]
    org_repo = urllib.parse.urlparse(repository).path.strip("/")
    path = f"notebooks/{chapter}.ipynb"
    return {"Binder": f"https://mybinder.org/v2/gh/{org_repo}/{branch}?urlpath=lab/tree/{path}",
            "Colab": f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{path}"}


def _notebook_counts(chapter):
    """(output images, math pieces) that the chapter's page should show."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    images, math = 0, 0
    parser = MarkdownIt("commonmark").use(dollarmath_plugin)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "remove-cell" in tags:
            continue
        if cell.cell_type == "markdown":
            for token in parser.parse(cell.source):
                children = token.children or [token]
                math += sum(t.type.startswith("math_") for t in children)
        elif "remove-output" not in tags:
            images += sum(any(m.startswith("image/") for m in out.get("data", {}))
                          for out in cell.get("outputs", []))
    return images, math


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site's html folder."""
    if importlib.util.find_spec("jupyter_book") is None:
        _unavailable("Jupyter Book is not installed; pip install -e '.[dev]'")
    return _load_script("build_book").build(tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="module")
def base_url(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        _unavailable(f"Playwright for Python is not installed ({err}); pip install -e '.[dev]'")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} not found; apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """One page opened in a fresh browser context, with everything that went wrong on the way."""

    def __init__(self, browser, base_url, path):
        self.problems = []
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        self.context.route("**/*", self._local_only(base_url))
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("console", lambda msg: msg.type == "error" and self.problems.append(
            f"console error: {msg.text}"))
        self.page.on("pageerror", lambda err: self.problems.append(f"page error: {err}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(
            f"HTTP {r.status}: {r.url}"))
        self.page.goto(f"{base_url}/{path}", wait_until="load")
        self.page.wait_for_load_state("networkidle")
        # MathJax typesets after load; wait for it wherever the page loads it.
        self.page.evaluate("() => window.MathJax?.startup?.promise ?? null")

    def _local_only(self, base_url):
        def handle(route):
            url = route.request.url
            if url.startswith(base_url + "/") or url.startswith("data:"):
                route.continue_()
            else:
                self.problems.append(f"request leaving the machine: {url}")
                route.abort()
        return handle

    def links(self):
        return self.page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, base_url):
    opened = []

    def open_page(path):
        opened.append(Visit(browser, base_url, path))
        return opened[-1]
    yield open_page
    for page in opened:
        page.close()


_fetched = {}


def _fetch(url):
    if url not in _fetched:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                _fetched[url] = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            _fetched[url] = err
    return _fetched[url]


def _broken_internal_links(links, base_url):
    broken = []
    for link in sorted(set(links)):
        if not link.startswith(base_url + "/"):
            continue
        target, _, anchor = link.partition("#")
        body = _fetch(target)
        if isinstance(body, Exception):
            broken.append(f"{link}: {body}")
        elif anchor and f'id="{urllib.parse.unquote(anchor)}"' not in body:
            broken.append(f"{link}: no element with id {anchor!r}")
    return broken


def test_the_book_lists_every_chapter():
    import yaml

    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    assert [entry["file"] for entry in toc["chapters"]] == [f"notebooks/{c}" for c in CHAPTERS]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page(chapter, visit, base_url):
    shown = visit(f"notebooks/{chapter}.html")
    page = shown.page
    assert page.locator("article h1").first.inner_text().strip()

    images, math = _notebook_counts(chapter)
    output_images = page.locator("article .cell_output img")
    assert output_images.count() == images, f"{chapter}: {images} images in the notebook"
    assert page.eval_on_selector_all(
        "article .cell_output img", "els => els.filter(i => !(i.complete && i.naturalWidth > 0)).length"
    ) == 0, "an image did not load"

    pieces = page.locator("article .math")
    assert pieces.count() == math, f"{chapter}: {math} pieces of math in the notebook"
    assert page.locator("article .math mjx-container").count() == math, "math left unrendered"
    raw_dollars = page.evaluate("""() => {
        const walker = document.createTreeWalker(document.querySelector('article'), NodeFilter.SHOW_TEXT);
        const raw = [];
        while (walker.nextNode()) {
            const node = walker.currentNode;
            if (node.parentElement.closest('pre, code, mjx-container, script, .math')) continue;
            if (node.textContent.includes('$') || node.textContent.includes('\\\\(')) raw.push(node.textContent);
        }
        return raw;
    }""")
    assert raw_dollars == [], "raw TeX left in the page"

    links = shown.links()
    for host, url in _expected_launch_links(chapter).items():
        assert url in links, f"{chapter}: no {host} link {url}"
    assert (ROOT / "notebooks" / f"{chapter}.ipynb").exists()
    assert _broken_internal_links(links, base_url) == []

    position = CHAPTERS.index(chapter)
    if position + 1 < len(CHAPTERS):
        assert page.locator("a.right-next").get_attribute("href").endswith(
            f"{CHAPTERS[position + 1]}.html")
    assert shown.problems == []


def test_front_page(visit, base_url):
    shown = visit("index.html")          # the site's root redirects to the front page
    page = shown.page
    page.wait_for_url("**/book/index.html")
    page.wait_for_load_state("networkidle")
    assert page.locator("article h2", has_text="Quick start").count() == 1
    assert "make lab" in page.locator("article").inner_text()

    links = shown.links()
    for chapter in CHAPTERS:
        assert f"{base_url}/notebooks/{chapter}.html" in links, f"no navigation link to {chapter}"
        for host, url in _expected_launch_links(chapter).items():
            assert url in links, f"front page: no {host} link for {chapter}"
    assert _broken_internal_links(links, base_url) == []
    assert shown.problems == []


def test_search_finds_a_chapter(visit, base_url):
    shown = visit("search.html?q=Hessian-vector")
    page = shown.page
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for()
    found = results.evaluate_all("els => els.map(a => a.href)")
    assert any("notebooks/02_grad_of_grad.html" in url for url in found), found
    assert shown.problems == []
