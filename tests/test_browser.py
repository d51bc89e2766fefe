"""The widgets in a real browser: JupyterLab and Voilà + Debian's Chromium, driven by Playwright.

1. JupyterLab (127.0.0.1, random port and token, a temporary HOME): a notebook with the
   playground and the Omniglot widget; Run All. The "compiling…" line shows before the
   first draw; K moves change the figure's pixels and the readout; ▶ moves the steps;
   at 700, 900 and 1400 px wide (file browser open) nothing is cut off, slider tracks
   stay usable and buttons keep their labels; the Omniglot widget's steps and new task
   change its probabilities and images.
2. ``make playground``'s page (Voilà, token): both tabs work.

Screenshots go to ``test-artifacts/``. With ``CI=true`` a missing Chromium or Playwright
FAILS the test; elsewhere it skips.
"""
import os
import pathlib
import time

import pytest

from benchmarks import browser_lab as lab

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_S = 240          # kernel start, imports and compiling on a busy 2-core machine
CELLS = ["from minimaml.widgets import playground\nplayground(seed=0)",
         "from minimaml.widgets import omniglot_adaptation\nomniglot_adaptation(seed=0)"]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def sync_playwright():
    """Playwright's sync API, or fail (CI) / skip (elsewhere) with the reason."""
    problem = lab.chromium_problem()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the browser test cannot run: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright
    return sync_playwright


@pytest.fixture
def omniglot_available():
    from minimaml import omniglot
    try:
        omniglot.load(progress=False)
    except (FileNotFoundError, omniglot.DataUnavailable) as err:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but Omniglot is not available: {err}")
        pytest.skip(f"Omniglot not available: {err}")


def _notebook(folder):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    folder.mkdir()
    nbformat.write(nb, folder / "widgets.ipynb")
    return folder


def _screenshot(locator):
    """The element's pixels, or None while it is being re-rendered (a widget's display is
    replaced once after its first draw; the locator finds the new element next time)."""
    from playwright.sync_api import Error
    try:
        return locator.screenshot()
    except Error as err:
        if "not attached" in str(err):
            return None
        raise


def _screenshot_with_ink(locator, minimum=3000):
    return lab.wait_for(lambda: (lambda png: png if png and lab.ink(png) > minimum else None)(
        _screenshot(locator)), "the figure to be drawn", timeout=TIMEOUT_S)


def _changed_from(before, locator, minimum):
    png = _screenshot(locator)
    return png if png and lab.changed_pixels(before, png) > minimum else None


def _check_layout(page, width):
    """Nothing of a widget is cut off, tracks are usable, button labels whole."""
    page.set_viewport_size({"width": width, "height": 1000})
    time.sleep(1.0)
    report = page.evaluate("""() => [...document.querySelectorAll('.minimaml-live')].map(w => {
        const box = w.getBoundingClientRect();
        const area = w.closest('.jp-OutputArea-output') || w.parentElement;
        const scroller = (el => { for (; el; el = el.parentElement) {
            if (el.scrollWidth > el.clientWidth + 1 &&
                ['auto', 'scroll'].includes(getComputedStyle(el).overflowX)) return true; }
            return false; })(w);
        const outside = [...w.querySelectorAll('svg, img, .widget-slider, button')].filter(e => {
            const r = e.getBoundingClientRect();
            return r.width > 0 && r.right > area.getBoundingClientRect().right + 1; }).length;
        return {cls: w.className, right: box.right, area: area.getBoundingClientRect().right,
                outside, scroller,
                tracks: [...w.querySelectorAll('.noUi-target')].map(t => t.getBoundingClientRect().width),
                cut: [...w.querySelectorAll('button')].filter(b => b.scrollWidth > b.clientWidth + 1)
                     .map(b => b.textContent)};
    })""")
    for widget in report:
        assert widget["outside"] == 0 or widget["scroller"], (width, widget)
        assert all(t >= 100 for t in widget["tracks"]), (width, widget)
        assert widget["cut"] == [], (width, widget)
    return report


def test_widgets_in_jupyterlab(sync_playwright, omniglot_available, tmp_path):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    folder = _notebook(tmp_path / "notebooks")
    with lab.server("lab", folder, tmp_path / "home", "widgets.ipynb") as (base, token, url), \
            sync_playwright() as p:
        browser = lab.launch(p)
        page = lab.open_page(browser, url, width=1400, timeout_s=TIMEOUT_S)
        try:
            expect.set_options(timeout=TIMEOUT_S * 1000)
            lab.run_all_in_lab(page, base, token, timeout_s=TIMEOUT_S)
            started = time.monotonic()
            # Something shows at once: the "compiling…" line, before the first numbers.
            expect(page.locator(".minimaml-playground .minimaml-compiling")).to_be_visible()
            compiling_s = time.monotonic() - started
            readout = page.locator(".minimaml-playground .minimaml-readout")
            expect(readout).to_contain_text("Query MSE")
            drawn_s = time.monotonic() - started
            assert compiling_s < drawn_s
            print(f"compiling… after {compiling_s:.1f} s, first draw after {drawn_s:.1f} s")
            expect(page.locator(".minimaml-playground .minimaml-compiling")).to_have_count(0)

            figure = page.locator(".minimaml-playground .minimaml-figure")
            before = _screenshot_with_ink(figure)
            before_text = readout.inner_text()
            assert "K = 10, α = 0.0100, 10 steps" in before_text
            alpha = page.locator(".minimaml-playground .minimaml-inner-lr .widget-readout")
            assert f"α = {alpha.inner_text().strip()}," in before_text   # written alike
            handle = page.locator(".minimaml-playground .minimaml-shots .noUi-handle")
            handle.focus()
            for _ in range(3):
                handle.press("ArrowRight")
            expect(page.locator(".minimaml-playground .minimaml-shots .widget-readout")
                   ).to_have_text("13")
            expect(readout).to_contain_text("K = 13")
            after = lab.wait_for(lambda: _changed_from(before, figure, 200),
                                 "the figure to change", timeout=30)
            (ARTIFACTS / "playground_before.png").write_bytes(before)
            (ARTIFACTS / "playground_after.png").write_bytes(after)
            mse = [part.split()[-1] for part in readout.inner_text().split("·")]
            assert mse != [part.split()[-1] for part in before_text.split("·")]

            play = page.locator(".minimaml-playground .minimaml-play")
            assert play.get_attribute("title"), "the play/stop/repeat buttons need a tooltip"
            play.locator("button").first.click()
            expect(readout).not_to_contain_text("10 steps")
            play.locator("button").nth(1).click()   # stop

            # Omniglot: probabilities after each step, a new task.
            omni = page.locator(".minimaml-omniglot")
            expect(omni.locator(".minimaml-readout")).to_contain_text("queries right")
            expect(omni.locator(".minimaml-compiling")).to_have_count(0)
            expect(omni.locator(".minimaml-queries img")).to_have_count(10)
            text = omni.locator(".minimaml-readout").inner_text()
            queries = omni.locator(".minimaml-queries").inner_html()
            omni_handle = omni.locator(".minimaml-steps .noUi-handle")
            omni_handle.focus()
            omni_handle.press("ArrowLeft")              # 1 step -> 0 steps
            expect(omni.locator(".minimaml-readout")).to_contain_text("0 steps")
            assert omni.locator(".minimaml-queries").inner_html() != queries
            support = omni.locator(".minimaml-support").inner_html()
            omni.locator(".minimaml-new-task").click()
            expect(omni.locator(".minimaml-readout")).to_contain_text("task 1")
            assert omni.locator(".minimaml-support").inner_html() != support
            assert text != omni.locator(".minimaml-readout").inner_text()

            # Any window from 700 px up, file browser open.
            if not page.locator(".jp-FileBrowser").first.is_visible():
                page.keyboard.press("Control+Shift+F")
            for width in (1400, 900, 700):
                _check_layout(page, width)
                page.screenshot(path=str(ARTIFACTS / f"widgets_{width}px.png"), full_page=True)
            assert page.locator(".jp-RenderedText[data-mime-type="
                                "'application/vnd.jupyter.error']").count() == 0
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "widgets_failure.png"), full_page=True)
            raise
        finally:
            browser.close()


def test_playground_app_in_voila(sync_playwright, omniglot_available, tmp_path):
    """What ``make playground`` serves: app/playground.ipynb in Voilà, a token."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    app = ROOT / "app" / "playground.ipynb"
    with lab.server("voila", app.parent, tmp_path / "home", app.name) as (base, token, url), \
            sync_playwright() as p:
        import http.client
        import urllib.parse
        address = urllib.parse.urlsplit(base)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        connection.request("GET", "/")                   # no token: sent to the login page
        response = connection.getresponse()
        assert response.status == 302 and "/login" in response.getheader("Location", "")
        connection.close()
        browser = lab.launch(p)
        page = lab.open_page(browser, url, width=900, timeout_s=TIMEOUT_S)
        try:
            expect.set_options(timeout=TIMEOUT_S * 1000)
            readout = page.locator(".minimaml-playground .minimaml-readout")
            expect(readout).to_contain_text("Query MSE")
            figure = page.locator(".minimaml-playground .minimaml-figure")
            before = _screenshot_with_ink(figure)
            handle = page.locator(".minimaml-playground .minimaml-steps .noUi-handle")
            handle.focus()
            handle.press("ArrowLeft")
            expect(readout).to_contain_text("9 steps")
            lab.wait_for(lambda: _changed_from(before, figure, 50),
                         "the figure to change", timeout=30)
            page.locator(".lm-TabBar-tab, .p-TabBar-tab, .widget-tab .lm-TabBar-tab",
                         has_text="Omniglot").first.click()
            omni = page.locator(".minimaml-omniglot")
            expect(omni.locator(".minimaml-readout")).to_contain_text("queries right")
            omni.locator(".minimaml-new-task").click()
            expect(omni.locator(".minimaml-readout")).to_contain_text("task 1")
            page.screenshot(path=str(ARTIFACTS / "playground_app.png"), full_page=True)
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "playground_app_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
