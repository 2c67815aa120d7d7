"""A real JupyterLab server and Debian's Chromium, driven by Playwright (see shared/BROWSER.md)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lab")


def _serve(app: str, root: Path, name: str):
    """Start ``python -m app`` (jupyterlab or notebook) on loopback with no token; yield its base URL."""
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(root / ".jupyter-runtime")}
    log_path = root / f"{name}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    expose = "LabApp" if app == "jupyterlab" else "JupyterNotebookApp"
    proc = subprocess.Popen(
        [sys.executable, "-m", app, "--allow-root", "--no-browser", "--ip", "127.0.0.1",
         "--port", str(port), "--ServerApp.token=", "--ServerApp.password=",
         f"--ServerApp.root_dir={root}", f"--{expose}.expose_app_in_browser=True"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(base + "api", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"{app} did not start:\n" + log_path.read_text()[-3000:]) from None
            time.sleep(0.3)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def lab_server(lab_root):
    """JupyterLab on loopback with no token; yields its base URL."""
    yield from _serve("jupyterlab", lab_root, "server")


@pytest.fixture(scope="session")
def notebook_server(lab_root):
    """Jupyter Notebook 7 on the same root, for what must work there too; yields its base URL."""
    yield from _serve("notebook", lab_root, "notebook-server")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Chromium is missing: apt-get install -y chromium (.ci/setup does this)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    # The browser's own errors, for a failure message (wait_for_widget) to show.
    pg.console_errors = []  # type: ignore[attr-defined]
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    # A screenshot of every run, passed or failed, for a person to look at.
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    _end_sessions(pg)
    context.close()


def _end_sessions(page) -> None:
    """Shut down the kernels of the server the page is on (a page that closes does not end its
    session): on a two-core machine each held an interpreter with mixcv and pandas imported, and
    the server kept buffering its messages, while the next test's kernel started. Non-GET calls
    to the server need the page's XSRF cookie."""
    from urllib.parse import urlsplit
    url = urlsplit(page.url)
    if url.scheme not in ("http", "https"):
        return
    base = f"{url.scheme}://{url.netloc}/"
    xsrf = next((c["value"] for c in page.context.cookies() if c["name"] == "_xsrf"), None)
    sessions = page.request.get(base + "api/sessions")
    if xsrf is None or not sessions.ok:
        return
    for session in sessions.json():
        page.request.delete(base + f"api/sessions/{session['id']}", headers={"X-XSRFToken": xsrf})


def write_notebook(lab_root: Path, name: str, *cells: str) -> None:
    """A notebook of code ``cells`` on the Python 3 kernel, saved in the lab's folder."""
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab_root / name)


def open_notebook(page, base: str, name: str) -> None:
    """Open a notebook and wait until its kernel has really answered (BROWSER.md, steps 1-2)."""
    # ?reset: start from an empty workspace, or JupyterLab reopens the notebooks of earlier
    # tests in hidden tabs and selectors can match their (invisible) widgets.
    page.goto(base + f"lab/tree/{name}?reset")
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-NotebookPanel')", timeout=60_000)
    page.evaluate("""async () => {
        const w = window.jupyterapp.shell.currentWidget;
        await w.context.ready; await w.sessionContext.ready;
        await w.sessionContext.session.kernel.info; }""")


#: JavaScript: true once the notebook's first code cell was sent to the kernel (its prompt shows
#: an execution count, or "*" while it waits or runs).
_STARTED = """() => { const p = window.jupyterapp.shell.currentWidget;
    const c = p && p.content.widgets.find(c => c.model.type === 'code');
    const prompt = c && c.node.querySelector('.jp-InputPrompt');
    return !!(c && (c.model.sharedModel.execution_count || (prompt && /\\[[*0-9]/.test(prompt.textContent)))); }"""


def run_all(page) -> None:
    """Start running every cell and return once the first has been sent to the kernel, not when
    all have finished (awaiting the command would miss everything shown meanwhile).

    The panel open_notebook waited for is activated first: the command runs on whatever
    JupyterLab takes as current, and in CI it once ran nothing at all (no prompt, no output for
    150 s). If the cells have not started within 30 s that is a failure of its own, said here
    rather than as a widget that never appeared.
    """
    page.evaluate("""() => { const p = window.jupyterapp.shell.currentWidget;
        window.jupyterapp.shell.activateById(p.id);
        window.jupyterapp.commands.execute('notebook:run-all-cells'); }""")
    page.wait_for_function(_STARTED, timeout=30_000, polling=250)


#: JavaScript: the current notebook's kernel status, each code cell's prompt and execution
#: count, whether the first code cell is "lost" (sent, "[*]", but never given a count), and
#: whether every cell "ran" (each has its count).
_KERNEL_STATE = """() => { const p = window.jupyterapp.shell.currentWidget;
    const kernel = p && p.sessionContext.session && p.sessionContext.session.kernel;
    const cells = p ? p.content.widgets.filter(c => c.model.type === 'code') : [];
    const prompts = cells.map(c => [(c.node.querySelector('.jp-InputPrompt') || {textContent: ''}).textContent,
                                    c.model.sharedModel.execution_count]);
    return {status: kernel ? kernel.status : 'no kernel', prompts: prompts,
            lost: prompts.length > 0 && /\\[\\*\\]/.test(prompts[0][0]) && !prompts[0][1],
            ran: prompts.length > 0 && prompts.every(p => !!p[1])}; }"""


#: How long the first widget of a notebook may take to appear: a kernel started on a loaded CI
#: machine imports mixcv, pandas and ipywidgets first (60 s was once not enough).
WIDGET_TIMEOUT = 150


def wait_for_widget(page, lab_root: Path, selector: str, timeout: float = WIDGET_TIMEOUT) -> None:
    """Wait for ``selector`` (a widget a cell displays); on timeout fail saying why, not just
    "timeout": what the cells printed (a traceback; nothing at all if the kernel never ran them)
    and the end of JupyterLab's log (a kernel that died or never started)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        page.wait_for_selector(selector, timeout=timeout * 1000)
    except PlaywrightTimeout:
        state = page.evaluate(_KERNEL_STATE)
        if state["status"] == "idle" and (state["lost"] or state["ran"]):
            # The kernel is idle and the widget is not there: either the cell waits for a reply
            # that never came (its prompt "[*]", no execution count: the execute request was lost
            # between JupyterLab and a kernel that had just started), or every cell ran and its
            # widget never rendered (seen in CI with no text in any output, not even an error, and
            # nothing in the log: its messages lost the same way). Both are the harness's messages
            # lost, not the form's failure: run the notebook once more; a second miss fails, with
            # whatever the cells show (a traceback the first time is there again).
            print(f"{selector}: the kernel is idle and the widget is not there ({state}); running it again")
            run_all(page)
            try:
                page.wait_for_selector(selector, timeout=timeout * 1000)
                return
            except PlaywrightTimeout:
                state = page.evaluate(_KERNEL_STATE)
        # A widget view that failed shows "Click to show javascript error.": click each so its
        # message is in the text read below.
        page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea *')]
            .filter(e => e.children.length === 0 && /Click to show javascript error/.test(e.textContent))
            .forEach(e => e.click())""")
        outputs = page.evaluate("() => Array.from(document.querySelectorAll('.jp-Cell .jp-OutputArea'))"
                                ".map(e => e.innerText).join('\\n---\\n')")
        log = lab_root / "server.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no server log)"
        errors = "\n".join(getattr(page, "console_errors", [])[-20:]) or "(none)"
        pytest.fail(f"{selector} did not appear within {timeout} s.\n"
                    f"kernel: {state}\n"
                    f"cell output:\n{outputs or '(none)'}\n\nbrowser console errors:\n{errors}\n\n"
                    f"JupyterLab's log, last lines:\n{tail}")

