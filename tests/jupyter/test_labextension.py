"""The prebuilt JupyterLab extension shipped in the package (no Node needed to install it).

The browser test (tests/browser/test_highlighting_in_lab.py) checks what it does; these check
that what pip installs is there, is the build of the source in labextension/, and asks for the
JupyterLab the project runs.
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.version import Version

import mixcv_jupyter

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "labextension"
BUNDLE = Path(mixcv_jupyter.__file__).parent / "labextension"


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _caret_admits(spec: str, installed: str) -> bool:
    """npm's ``^X.Y.Z``: at least X.Y.Z and below (X+1).0.0 (the only form these ranges use)."""
    match = re.fullmatch(r"\^(\d+)\.(\d+)\.(\d+)", spec)
    assert match, f"expected a caret range like ^4.6.0, got {spec!r}"
    low = Version(".".join(match.groups()))
    return low <= Version(installed) < Version(f"{low.major + 1}")


def test_the_bundle_pip_installs_is_there_with_its_entry_point():
    built = _json(BUNDLE / "package.json")
    entry = BUNDLE / built["jupyterlab"]["_build"]["load"]
    assert entry.is_file() and entry.stat().st_size > 0
    assert (BUNDLE / "static" / "style.js").is_file()
    assert built["jupyterlab"]["extension"] is True


def test_the_bundle_is_the_build_of_the_source_package():
    source = _json(SOURCE / "package.json")
    built = _json(BUNDLE / "package.json")
    assert built["name"] == source["name"] == "mixcv-jupyter"
    assert built["version"] == source["version"]
    assert built["dependencies"] == source["dependencies"]
    # The magic-line pattern of src/index.ts survives minification as a regex literal: a bundle
    # not rebuilt after the source changed it is caught here.
    pattern = re.search(r"const MAGIC_LINE = (/.+/);", (SOURCE / "src" / "index.ts").read_text()).group(1)
    chunks = "".join(p.read_text(encoding="utf-8") for p in (BUNDLE / "static").glob("*.js"))
    assert pattern in chunks
    assert "mixcv-jupyter:yaml-cells" in chunks


def test_the_extension_asks_for_the_jupyterlab_this_project_runs():
    deps = _json(BUNDLE / "package.json")["dependencies"]
    lab = {name: spec for name, spec in deps.items() if name.startswith("@jupyterlab/")}
    assert set(lab) == {"@jupyterlab/application", "@jupyterlab/codemirror"}
    assert len(set(lab.values())) == 1, lab  # one JupyterLab release, not a mix
    spec = lab["@jupyterlab/application"]
    assert _caret_admits(spec, version("jupyterlab")), (spec, version("jupyterlab"))


def test_pip_copies_the_bundle_to_where_jupyterlab_looks_for_extensions():
    shared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
        "shared-data"]
    name = _json(BUNDLE / "package.json")["name"]
    assert shared[BUNDLE.relative_to(ROOT).as_posix()] == f"share/jupyter/labextensions/{name}"
    assert shared["labextension/install.json"] == f"share/jupyter/labextensions/{name}/install.json"
    assert _json(SOURCE / "install.json")["packageName"] == "mixcv"
    # `jupyter labextension develop` links the same directory under the same name.
    assert mixcv_jupyter._jupyter_labextension_paths() == [{"src": "labextension", "dest": name}]


def test_caret_ranges_are_read_as_npm_reads_them():
    assert _caret_admits("^4.6.0", "4.6.6")
    assert _caret_admits("^4.6.0", "4.9.0")
    assert not _caret_admits("^4.6.0", "4.5.9")
    assert not _caret_admits("^4.6.0", "5.0.0")
