"""Every ```python block of the README and docs/ runs (blocks of one file share a namespace)."""

import re
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_code_blocks_run(path, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace: dict = {}
    for i, code in enumerate(BLOCK.findall(path.read_text())):
        exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)


def test_api_reference_lists_every_public_name():
    """docs/api.rst has an entry for each name in the ``__all__`` of the modules it covers."""
    import importlib

    text = (ROOT / "docs" / "api.rst").read_text()
    sections = re.split(r"^\.\. currentmodule:: ", text, flags=re.MULTILINE)[1:]
    assert len(sections) >= 10
    not_objects = {"__version__", "Params"}  # a string; a type alias (no page of its own)
    for section in sections:
        module = section.split("\n", 1)[0].strip()
        listed = set(re.findall(r"^   (\w+)$", section, flags=re.MULTILINE))
        public = set(importlib.import_module(module).__all__) - not_objects
        assert public <= listed, f"{module}: not in docs/api.rst: {sorted(public - listed)}"


def test_docs_site_builds_with_every_example(tmp_path):
    """Sphinx with warnings as errors; sphinx-gallery runs every example in examples/."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OVERPARAM_DOCS_FAST": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
         "-D", "sphinx_gallery_conf.run_stale_examples=True",  # run even if unchanged
         "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, env=env, timeout=1800)
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    html = tmp_path / "html"
    examples = sorted(p.stem for p in (ROOT / "examples").glob("plot_*.py"))
    assert len(examples) >= 6
    for name in examples:
        page = (html / "auto_examples" / f"{name}.html").read_text()
        assert "sphx-glr-single-img" in page or "sphx-glr-multi-img" in page, name  # a figure
    for page in ("index", "getting_started", "api", "sparse", "group", "mmv",
                 "matrix_sensing", "spectral", "references"):
        assert (html / f"{page}.html").exists(), page
    assert (html / "generated" / "overparam.estimators.HadamardRegressor.html").exists()
