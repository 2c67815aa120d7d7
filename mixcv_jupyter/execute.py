"""Execute a notebook headless and show what it produced.

``python -m mixcv_jupyter.execute notebooks/quickstart.ipynb --output-dir notebooks/_build``
runs every cell in a fresh kernel, writes the executed notebook and an HTML rendering
of it, and prints each cell's text output to the terminal, so the README's main
command shows real results without opening a browser. The notebook tests use
`execute_notebook` too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["execute_notebook", "main"]


def execute_notebook(path: str | Path, timeout: int = 600, cwd: str | Path | None = None):
    """Run every cell of the notebook at ``path`` in a fresh ``python3`` kernel.

    Returns
    -------
    nbformat.NotebookNode
        The executed notebook.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        If a cell raises; the message shows the cell and its traceback.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    # No widget state in the executed notebook: its HTML rendering then shows each output's
    # text/html (the results report) instead of a widget that needs JavaScript from the web.
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    client.execute()
    return nb


def _text_of(output) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return output.get("text", "")
    if kind == "error":
        return "\n".join(output.get("traceback", []))
    data = output.get("data", {})
    if "text/plain" in data and "text/html" not in data:
        return data["text/plain"]
    extras = [k for k in data if k != "text/plain"]
    if "text/plain" in data and data["text/plain"].strip():
        return data["text/plain"] + (f"\n[+ {', '.join(extras)} in the HTML report]" if extras else "")
    return f"[{', '.join(extras)} — see the HTML report]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args(argv)

    import nbformat
    from nbconvert import HTMLExporter

    t0 = time.perf_counter()
    print(f"Executing {args.notebook} ...", flush=True)
    nb = execute_notebook(args.notebook, timeout=args.timeout)
    elapsed = time.perf_counter() - t0
    out_dir = args.output_dir or args.notebook.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / args.notebook.name
    nbformat.write(nb, executed)
    html_path = executed.with_suffix(".html")
    body, _ = HTMLExporter().from_notebook_node(nb)
    html_path.write_text(body, encoding="utf-8")

    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        texts = [t for t in (_text_of(o) for o in cell.get("outputs", [])) if t.strip()]
        if not texts:
            continue
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        print(f"\n── cell {i}: {first[:70]}")
        for t in texts:
            print(t.rstrip())
    print(f"\nExecuted in {elapsed:.1f} s. Notebook: {executed}  HTML: {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
