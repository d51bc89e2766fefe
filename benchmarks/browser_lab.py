"""A widget page in a real browser: JupyterLab or Voilà on 127.0.0.1 with a token, Chromium
driven by Playwright, and a latency probe inside the page.

Shared by ``benchmarks/widget_latency.py`` (the browser numbers) and
``tests/test_browser.py``. Everything the servers write goes to a temporary HOME.

The probe (:data:`PROBE_JS`, installed before the page's own scripts) timestamps, with
the page's ``performance.now()`` clock:

- ``inputs``: every keydown/pointerdown (the event's own ``timeStamp``: when Chromium
  created the input event);
- ``sent`` / ``received``: every websocket frame the page sends / receives (the kernel's
  channels);
- ``changes``: every change to what a widget shows: a ``drawImage``/``putImageData`` on a
  canvas inside an ipympl figure, or a DOM mutation inside a ``.minimaml-live`` widget
  (bqplot's SVG, the readouts, the Omniglot images) other than in its controls (a
  slider's own handle and number move at once, before anything was computed);
- ``paints``: for each such change, the first moment after the frame that holds it was
  painted (a ``setTimeout(0)`` queued from the next ``requestAnimationFrame``: the task
  after that frame's paint, the usual "next paint" measurement).
"""
import contextlib
import io
import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"

PROBE_JS = r"""
(() => {
  const P = window.__probe = {inputs: [], sent: [], received: [], changes: [], figure: [], paints: []};
  P.reset = () => { for (const k of ['inputs', 'sent', 'received', 'changes', 'figure', 'paints']) P[k] = []; };
  for (const type of ['keydown', 'pointerdown']) {
    document.addEventListener(type, e => P.inputs.push(e.timeStamp), true);
  }
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) { P.sent.push(performance.now()); return send.call(this, data); };
  const onmessage = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage');
  Object.defineProperty(WebSocket.prototype, 'onmessage', {
    configurable: true, get() { return onmessage.get.call(this); },
    set(handler) {
      onmessage.set.call(this, handler && function (e) {
        P.received.push(performance.now()); return handler.call(this, e); });
    }});
  const add = WebSocket.prototype.addEventListener;
  WebSocket.prototype.addEventListener = function (type, listener, options) {
    if (type === 'message' && typeof listener === 'function') {
      const inner = listener;
      listener = function (e) { P.received.push(performance.now()); return inner.call(this, e); };
    }
    return add.call(this, type, listener, options);
  };
  let pending = false;
  const changed = (figure) => {
    P.changes.push(performance.now());
    if (figure) P.figure.push(performance.now());
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => setTimeout(() => { pending = false; P.paints.push(performance.now()); }, 0));
  };
  for (const method of ['drawImage', 'putImageData']) {
    const original = CanvasRenderingContext2D.prototype[method];
    CanvasRenderingContext2D.prototype[method] = function (...args) {
      if (this.canvas && this.canvas.closest && this.canvas.closest('.jupyter-matplotlib')) changed(true);
      return original.apply(this, args);
    };
  }
  const start = () => new MutationObserver(records => {
    const inWidget = node => {
      const element = node && (node.nodeType === 1 ? node : node.parentElement);
      return element && element.closest('.minimaml-live') &&
        !element.closest('.widget-slider, .widget-play, .widget-button, .widget-toggle-buttons, .minimaml-status');
    };
    const mine = records.filter(r => inWidget(r.target));
    if (mine.length) changed(mine.some(r => {
      const e = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      return e && e.closest('.minimaml-figure'); }));
  }).observe(document.documentElement, {subtree: true, attributes: true, childList: true,
                                         characterData: true});
  if (document.documentElement) start(); else document.addEventListener('DOMContentLoaded', start);
})();
"""


def chromium_problem() -> str | None:
    """Why Chromium + Playwright cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        return f"Playwright for Python is not installed ({err}); pip install -e '.[dev]'"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not found; apt-get install chromium (.ci/run does)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(base: str, token: str, path: str, method: str = "GET"):
    request = urllib.request.Request(f"{base}{path}", method=method,
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


def wait_for(condition, what: str, timeout: float = 90.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def private_env(home: pathlib.Path) -> dict:
    """An environment whose Jupyter, IPython and matplotlib state lives under ``home``,
    with JupyterLab's "get news?" pop-up switched off. The Omniglot cache stays the
    user's (``MINIMAML_CACHE``), so a kernel does not rebuild it."""
    try:
        from minimaml.omniglot import default_cache_dir
        cache = str(default_cache_dir())
    except ImportError:
        cache = os.environ.get("MINIMAML_CACHE", "")
    for sub in ("config", "data", "ipython", "mpl", "tmp", "settings", "workspaces"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    news = home / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"), "IPYTHONDIR": str(home / "ipython"),
            "MPLCONFIGDIR": str(home / "mpl"), "TMPDIR": str(home / "tmp"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "MINIMAML_CACHE": cache,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")]))}


@contextlib.contextmanager
def server(kind: str, root_dir: pathlib.Path, home: pathlib.Path, notebook: str | None = None):
    """JupyterLab (``kind="lab"``) or Voilà (``kind="voila"``, serving ``notebook``) on
    127.0.0.1, a random port and token; yields ``(base_url, token, page_url)``."""
    env = private_env(home)
    port, token = free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    if kind == "lab":
        command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                   f"--port={port}", f"--IdentityProvider.token={token}",
                   f"--ServerApp.root_dir={root_dir}", "--ServerApp.open_browser=False",
                   "--LabApp.news_url=None"]
        page = f"{base}/lab/tree/{notebook}?token={token}" if notebook else f"{base}/lab?token={token}"
    elif kind == "voila":
        command = [sys.executable, "-m", "voila", str(root_dir / notebook), "--no-browser",
                   "--Voila.ip=127.0.0.1", f"--port={port}", f"--token={token}"]
        page = f"{base}/?token={token}"
    else:
        raise ValueError(f"kind must be 'lab' or 'voila'; got {kind!r}")
    if os.geteuid() == 0 and kind == "lab":
        command.append("--allow-root")   # JupyterLab refuses root without it
    log_path = home / f"{kind}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=root_dir)

        def up():
            if process.poll() is not None:
                raise AssertionError(f"{kind} exited:\n" + log_path.read_text())
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                return True
            except urllib.error.HTTPError:   # it answers (Voilà has no /api/status)
                return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False
        try:
            wait_for(up, f"{kind} to answer", timeout=90)
            yield base, token, page
        finally:
            try:
                if kind == "lab":
                    api(base, token, "/api/shutdown", method="POST")
                    process.wait(timeout=15)
                else:
                    process.terminate()
                    process.wait(timeout=15)
            except Exception:
                process.kill()
                process.wait(timeout=15)


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-gpu"])


def open_page(browser, url: str, width: int = 1400, height: int = 1000,
              pixel_ratio: float = 1.0, timeout_s: float = 90.0):
    """A page at ``url`` with the probe installed, ``width`` x ``height`` CSS px."""
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=pixel_ratio)
    context.add_init_script(PROBE_JS)
    page = context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    page.goto(url)
    return page


def run_all_in_lab(page, base: str, token: str, timeout_s: float = 90.0) -> None:
    """Wait for the notebook's kernel to be idle, then Run All (menu Run → Run All Cells)."""
    from playwright.sync_api import expect

    def kernel_idle():
        sessions = api(base, token, "/api/sessions")
        return any(s.get("kernel", {}).get("execution_state") == "idle" for s in sessions)
    wait_for(kernel_idle, "the notebook's kernel to start", timeout=timeout_s)
    expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(
        timeout=timeout_s * 1000)
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()


def kernel_busy(base: str, token: str) -> bool:
    sessions = api(base, token, "/api/sessions")
    return any(s.get("kernel", {}).get("execution_state") != "idle" for s in sessions)


def ink(png: bytes) -> int:
    """How many pixels of a screenshot are not (nearly) white."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return int((pixels < 240).sum())


def changed_pixels(png_a: bytes, png_b: bytes) -> int:
    """Pixels that differ clearly between two screenshots of one element (best of a
    0-2 px vertical shift: a canvas element may be a pixel taller than its picture)."""
    import numpy as np
    from PIL import Image

    a, b = (np.asarray(Image.open(io.BytesIO(p)).convert("L"), dtype=int)
            for p in (png_a, png_b))
    if a.shape[1] != b.shape[1] or abs(a.shape[0] - b.shape[0]) > 2:
        return a.size
    rows = min(a.shape[0], b.shape[0]) - 2
    return min(int((abs(a[i:i + rows] - b[j:j + rows]) > 30).sum())
               for i in range(3) for j in range(3))


def measure_move(page, act, settle_s: float = 0.5, timeout_s: float = 10.0) -> dict | None:
    """Do ``act()`` (one key press or click) and time it in the page, in ms:

    ``latency``: input event → the paint after the LAST pixel change it caused (every
    panel and readout updated); ``figure``: → the paint after the last change to the
    figure (``.minimaml-figure``: the panels, not the text readouts); ``first``: → the
    paint after the first change; ``sent``: input →
    first websocket frame out; ``arrived``: input → the last frame in before the last
    change; ``render``: that frame → the change; ``paint``: change → painted.
    None when nothing changed (e.g. the slider was already at its end).
    """
    page.evaluate("window.__probe.reset()")
    act()
    # Done when neither the page nor the websocket has changed for ``settle_s``: a move
    # whose panels change at once in the browser still waits for the kernel's reply.
    deadline = time.monotonic() + timeout_s
    last_state, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        state = page.evaluate("[__probe.changes.length, __probe.paints.length, "
                              "__probe.received.length]")
        if state != last_state:
            last_state, quiet_since = state, time.monotonic()
        elif state[0] and state[1] and state[2] and time.monotonic() - quiet_since > settle_s:
            break
    probe = page.evaluate("({inputs: __probe.inputs, sent: __probe.sent, "
                          "received: __probe.received, changes: __probe.changes, "
                          "figure: __probe.figure, paints: __probe.paints})")
    if not probe["inputs"] or not probe["changes"] or not probe["paints"]:
        return None
    start = probe["inputs"][0]
    last_change = probe["changes"][-1]
    paints_after = [p for p in probe["paints"] if p >= last_change]
    if not paints_after:
        return None
    arrived = [r for r in probe["received"] if r <= last_change]
    sent = [s for s in probe["sent"] if s >= start]
    first_paint = [p for p in probe["paints"] if p >= probe["changes"][0]][0]
    figure = float("nan")
    if probe["figure"]:
        figure = [p for p in probe["paints"] if p >= probe["figure"][-1]][0] - start
    return {"latency": paints_after[0] - start, "first": first_paint - start, "figure": figure,
            "sent": (sent[0] - start) if sent else float("nan"),
            "arrived": (arrived[-1] - start) if arrived else float("nan"),
            "render": (last_change - arrived[-1]) if arrived else float("nan"),
            "paint": paints_after[0] - last_change, "changes": len(probe["changes"])}
