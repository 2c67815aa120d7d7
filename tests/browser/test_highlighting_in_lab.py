"""The prebuilt labextension in a real JupyterLab and Notebook 7: a %%mixcv cell is highlighted as YAML.

The reference is JupyterLab's own rendering of the same text in its file editor, which the
extension leaves alone: a ``.yaml`` file (YAML mode) and a ``.py`` file (Python mode). A cell
matches one of them token for token (text and highlight classes, whatever the class scheme).
"""

from __future__ import annotations

import time

import nbformat
import pytest

from .conftest import open_notebook

PLUGIN = "mixcv-jupyter:yaml-cells"

MIXCV_CELL = """%%mixcv -o res
data: df
target: y   # the outcome
groups: group
models:
  LinearMixedEffectsModel:
  RandomForestRegressor: {n_estimators: 40, merf: true}"""

PYTHON_CELL = """res = run(df, seed=3)  # not YAML
data = {"target": 'y', "n": 40}"""

# A cell that becomes a %%mixcv cell only when the magic line is typed above it.
BODY = "target: y\nmodels: [Ridge, 'Lasso']  # two"

# Every text node of every line with the highlight classes around it; CodeMirror's own
# decoration classes (cm-*: cursor line, bracket match, selection match) are left out.
TOKENS_JS = """(root) => Array.from(root.querySelectorAll('.cm-content .cm-line')).map(line => {
    const out = [];
    const walker = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const classes = [];
        for (let e = n.parentElement; e && e !== line; e = e.parentElement)
            for (const c of e.classList) if (!c.startsWith('cm-')) classes.push(c);
        const key = classes.sort().join(' ');
        if (out.length && out[out.length - 1][1] === key) out[out.length - 1][0] += n.textContent;
        else out.push([n.textContent, key]);
    }
    return out;
})"""


def _settled(read, until=lambda tokens: True, timeout: float = 20.0):
    """Read tokens until two reads agree and ``until`` holds (CodeMirror parses in slices)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        tokens = read()
        if tokens == last and tokens and until(tokens):
            return tokens
        last = tokens
        time.sleep(0.3)
    return last


def _file_tokens(page, path: str):
    """Open ``path`` in JupyterLab's file editor and read its highlighted lines."""
    page.evaluate("(p) => window.jupyterapp.commands.execute('docmanager:open', {path: p, factory: 'Editor'})", path)
    page.wait_for_function("(p) => { const w = window.jupyterapp.shell.currentWidget;"
                           " return w && w.context && w.context.path === p && w.node.querySelector('.cm-line'); }",
                           arg=path, timeout=30_000)
    read = lambda: page.evaluate(f"() => ({TOKENS_JS})(window.jupyterapp.shell.currentWidget.node)")  # noqa: E731
    tokens = _settled(read, until=lambda t: any(cls for line in t for _, cls in line))
    page.evaluate("() => window.jupyterapp.commands.execute('application:close-all')")
    return tokens


def _cell_tokens(page, index: int, until=lambda tokens: True):
    read = lambda: page.evaluate(  # noqa: E731
        f"(i) => ({TOKENS_JS})(document.querySelectorAll('.jp-Notebook .jp-Cell')[i])", index)
    return _settled(read, until)


def _write_files(root) -> None:
    """Each text as a .yaml and a .py file (the references) and all three as cells of a notebook."""
    for name, text in {"spec.yaml": MIXCV_CELL, "spec.py": MIXCV_CELL, "plain.yaml": PYTHON_CELL,
                       "plain.py": PYTHON_CELL, "body.yaml": "%%mixcv\n" + BODY, "body.py": BODY}.items():
        (root / name).write_text(text)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(MIXCV_CELL), nbformat.v4.new_code_cell(PYTHON_CELL),
                nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "codemirror_mode": {"name": "ipython", "version": 3}}
    nbformat.write(nb, root / "highlight.ipynb")


def _assert_active(page) -> None:
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.restored !== undefined", timeout=60_000)
    page.evaluate("() => window.jupyterapp.restored")
    installed = page.evaluate(f"() => window.jupyterapp.hasPlugin('{PLUGIN}')"
                              f" && window.jupyterapp.isPluginActivated('{PLUGIN}')")
    assert installed, ("the mixcv-jupyter labextension is not active here: it is installed into"
                       " <prefix>/share/jupyter/labextensions by `pip install [-e] .` (.ci/setup does this)")


@pytest.mark.browser
def test_a_mixcv_cell_shows_yaml_and_a_python_cell_stays_python(lab_server, lab_root, page):
    _write_files(lab_root)
    page.goto(lab_server + "lab?reset")
    _assert_active(page)

    # JupyterLab's own highlighting of each text as a YAML file and as a Python file.
    ref = {name: _file_tokens(page, name) for name in
           ("spec.yaml", "spec.py", "plain.yaml", "plain.py", "body.yaml", "body.py")}
    # The texts chosen so that the two modes really differ: otherwise the test could not tell.
    for stem in ("spec", "plain", "body"):
        assert ref[f"{stem}.yaml"] != ref[f"{stem}.py"], stem

    open_notebook(page, lab_server, "highlight.ipynb")
    mixcv = _cell_tokens(page, 0, until=lambda t: t == ref["spec.yaml"])
    assert mixcv == ref["spec.yaml"]
    python = _cell_tokens(page, 1, until=lambda t: t == ref["plain.py"])
    assert python == ref["plain.py"]
    assert _cell_tokens(page, 2, until=lambda t: t == ref["body.py"]) == ref["body.py"]

    # Typing the magic line above a body switches that cell to YAML; removing it switches back.
    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(2).locator(".cm-content")
    cell.click()
    page.keyboard.press("Control+Home")
    page.keyboard.type("%%mixcv\n")
    assert _cell_tokens(page, 2, until=lambda t: t == ref["body.yaml"]) == ref["body.yaml"]
    page.keyboard.press("Control+Home")
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Delete")
    assert _cell_tokens(page, 2, until=lambda t: t == ref["body.py"]) == ref["body.py"]


@pytest.mark.browser
def test_notebook_7_highlights_a_mixcv_cell_as_yaml_too(notebook_server, lab_root, page):
    _write_files(lab_root)
    # Notebook 7 opens a file in its own editor page, and a notebook in another.
    ref = {}
    for name in ("spec.yaml", "spec.py", "plain.py"):
        page.goto(notebook_server + "edit/" + name)
        page.wait_for_selector(".jp-FileEditor .cm-line", timeout=60_000)
        read = lambda: page.evaluate(f"() => ({TOKENS_JS})(document.querySelector('.jp-FileEditor'))")  # noqa: E731
        ref[name] = _settled(read, until=lambda t: any(cls for line in t for _, cls in line))
    assert ref["spec.yaml"] != ref["spec.py"]

    page.goto(notebook_server + "notebooks/highlight.ipynb")
    _assert_active(page)
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-line", timeout=60_000)
    assert _cell_tokens(page, 0, until=lambda t: t == ref["spec.yaml"]) == ref["spec.yaml"]
    assert _cell_tokens(page, 1, until=lambda t: t == ref["plain.py"]) == ref["plain.py"]
