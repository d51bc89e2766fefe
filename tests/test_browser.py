"""The playground in a real browser: JupyterLab + Debian's Chromium, driven by Playwright.

Starts JupyterLab on 127.0.0.1 (random port and token, a temporary HOME and Jupyter
dirs), opens ``notebooks/07_playground.ipynb`` (a copy, with a tiny meta-training run),
runs all cells, moves the K slider, and checks that the figure's pixels and the MSE
readout changed; then presses ▶ and checks the steps move. Screenshots go to ``test-artifacts/``.

With ``CI=true`` a missing Chromium or Playwright FAILS the test; elsewhere it skips.
"""
import io
import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07_playground.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
TIMEOUT_S = 90          # kernel start + run all cells on a busy 2-core machine

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def sync_playwright():
    """Playwright's sync API, or fail (CI) / skip (elsewhere) with the reason."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        problem = f"Playwright for Python is not installed ({err}); pip install -e '.[dev]'"
    if problem is None and not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} not found; apt-get install chromium (.ci/run does)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the browser test cannot run: {problem}")
        pytest.skip(problem)
    return sync_playwright


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(base, token, path, method="GET"):
    request = urllib.request.Request(f"{base}{path}", method=method,
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


def _wait_for(condition, what, timeout=TIMEOUT_S, every=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _prepare(tmp):
    """A notebook dir with a fresh copy of the playground, and an environment for Lab."""
    import nbformat

    home, notebooks = tmp / "home", tmp / "notebooks"
    for sub in ("config", "data", "ipython", "mpl", "tmp", "settings", "workspaces"):
        (home / sub).mkdir(parents=True)
    notebooks.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.metadata.pop("widgets", None)          # no saved widget views: only live ones
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    (parameters,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source += "\nown_meta_steps = 100  # the test's small run"
    nbformat.write(nb, notebooks / NOTEBOOK.name)

    # Keep JupyterLab's "get news?" pop-up from covering the page.
    news = home / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_DATA_DIR": str(home / "data"), "IPYTHONDIR": str(home / "ipython"),
           "MPLCONFIGDIR": str(home / "mpl"), "TMPDIR": str(home / "tmp"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return notebooks, env


def _ink(png):
    """How many pixels of a screenshot are not (nearly) white."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return int((pixels < 240).sum())


def _changed_pixels(png_a, png_b):
    """Pixels that differ clearly between two screenshots (best of a 0-2 px vertical shift:
    the browser's canvas element may be a pixel taller than the figure)."""
    import numpy as np
    from PIL import Image

    a, b = (np.asarray(Image.open(io.BytesIO(p)).convert("L"), dtype=int) for p in (png_a, png_b))
    if a.shape[1] != b.shape[1] or abs(a.shape[0] - b.shape[0]) > 2:
        return a.size
    rows = min(a.shape[0], b.shape[0]) - 2
    return min(int((abs(a[i:i + rows] - b[j:j + rows]) > 30).sum())
               for i in range(3) for j in range(3))


@pytest.fixture
def lab(tmp_path):
    """A running JupyterLab serving the playground copy: (base url, token)."""
    notebooks, env = _prepare(tmp_path)
    port, token = _free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={notebooks}", "--ServerApp.open_browser=False",
               "--LabApp.news_url=None"]
    if os.geteuid() == 0:
        command.append("--allow-root")   # JupyterLab refuses root without it
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                              cwd=notebooks)
    base = f"http://127.0.0.1:{port}"

    def up():
        if server.poll() is not None:
            raise AssertionError("JupyterLab exited:\n" + (tmp_path / "jupyter.log").read_text())
        try:
            return _api(base, token, "/api/status") is not None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
    try:
        _wait_for(up, "JupyterLab to answer")
        yield base, token
    finally:
        try:
            _api(base, token, "/api/shutdown", method="POST")
            server.wait(timeout=15)
        except Exception:
            server.terminate()
            server.wait(timeout=15)
        log.close()


def test_playground_in_jupyterlab(sync_playwright, lab):
    from playwright.sync_api import expect

    base, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.set_default_timeout(TIMEOUT_S * 1000)
            expect.set_options(timeout=TIMEOUT_S * 1000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")

            # The kernel must exist and be idle before "Run All" (else: a kernel dialog).
            def kernel_idle():
                sessions = _api(base, token, "/api/sessions")
                return any(s.get("kernel", {}).get("execution_state") == "idle"
                           for s in sessions)
            _wait_for(kernel_idle, "the notebook's kernel to start")
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible()

            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()

            canvas = page.locator(".jupyter-matplotlib-canvas-div").first
            readout = page.locator(".minimaml-readout").first
            expect(canvas).to_be_visible()
            expect(readout).to_contain_text("Query MSE")
            # ipympl shows the canvas before the kernel's first image arrives.
            before_png = _wait_for(lambda: (lambda png: png if _ink(png) > 5000 else None)(
                canvas.screenshot()), "the figure to be drawn")
            before_text = readout.inner_text()
            assert "after 10 steps on K = 10" in before_text
            # What the kernel drew is what the library draws here for the same settings.
            from minimaml.widgets import playground
            expected_before = playground(seed=0).snapshot_png()
            expected_after = playground(seed=0, shots=13).snapshot_png()
            (ARTIFACTS / "playground_before.png").write_bytes(before_png)
            (ARTIFACTS / "expected_before.png").write_bytes(expected_before)
            assert _changed_pixels(before_png, expected_before) < 100

            handle = page.locator(".minimaml-shots .noUi-handle").first
            handle.focus()
            for _ in range(3):
                handle.press("ArrowRight")
            expect(page.locator(".minimaml-shots .widget-readout").first).to_have_text("13")
            expect(readout).to_contain_text("K = 13")
            after_text = readout.inner_text()
            # The browser shows the K = 13 picture, all of it (no stale frame, no ghost lines).
            after_png = _wait_for(
                lambda: (lambda png: png if _changed_pixels(expected_after, png) < 100 else None)(
                    canvas.screenshot()), "the figure to show K = 13 exactly", timeout=20)
            assert _changed_pixels(before_png, after_png) > 200
            (ARTIFACTS / "playground_after.png").write_bytes(after_png)
            page.screenshot(path=str(ARTIFACTS / "playground_page.png"), full_page=True)

            assert after_text != before_text
            mse = [part.split()[-1] for part in after_text.split("·")]
            before_mse = [part.split()[-1] for part in before_text.split("·")]
            assert mse != before_mse, (before_text, after_text)
            assert page.locator(".jp-RenderedText[data-mime-type="
                                "'application/vnd.jupyter.error']").count() == 0

            # ▶ animates the steps slider (a browser-side link) and the kernel follows.
            page.locator(".widget-play button").first.click()
            expect(readout).not_to_contain_text("after 10 steps")
            expect(readout).to_contain_text("K = 13")
            page.locator(".widget-play button").nth(1).click()   # stop

            # The rest of the notebook ran too (the second playground, own parameters).
            expect(page.locator(".minimaml-readout")).to_have_count(2)
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "playground_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
