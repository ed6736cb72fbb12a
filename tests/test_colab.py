"""Colab readiness: every notebook's first cell installs mixlib where it is missing and keeps the
PyTorch that is already there.

The test builds what a Colab runtime looks like: a fresh virtual environment without mixlib in
which the running interpreter's packages (torch among them) are preinstalled, here made visible
through a ``.pth`` line instead of installed a second time. It then runs the notebooks' first
cell there, from an empty folder, with ``MIXLIB_SOURCE`` pointing at this checkout.
"""
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def first_code_cells() -> dict[str, str]:
    cells = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
        cells[path.name] = "".join(code[0]["source"])
    return cells


def test_every_notebook_starts_with_the_same_setup_cell():
    cells = first_code_cells()
    assert len(cells) >= 8
    assert len(set(cells.values())) == 1, "the notebooks' first cells differ"
    cell = next(iter(cells.values()))
    assert 'find_spec("mixlib") is None' in cell and "MIXLIB_SOURCE" in cell
    assert "torch" not in cell.split("pip")[1].split("\n")[0], "the install line must not name torch"


def test_the_setup_cell_installs_mixlib_in_a_fresh_environment_and_keeps_torch(tmp_path):
    env_dir = tmp_path / "colab"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    fresh_site = Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    # "preinstalled": the packages of the interpreter running the tests, torch included
    preinstalled = Path(torch.__file__).resolve().parents[1]
    (fresh_site / "preinstalled.pth").write_text(f"{preinstalled}\n")

    workdir = tmp_path / "work"  # not the checkout: `import mixlib` must not find ./mixlib
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MIXLIB_SOURCE"] = str(ROOT)
    probe = ("import importlib.util; print(importlib.util.find_spec('mixlib') is None)")
    before = subprocess.run([python, "-c", probe], cwd=workdir, env=env, capture_output=True,
                            text=True, check=True).stdout.strip()
    assert before == "True", "mixlib is importable before the cell ran: the test proves nothing"

    cell = next(iter(first_code_cells().values()))
    script = cell + ("\nimport json, torch, mixlib\n"
                     "print(json.dumps({'torch': torch.__version__, 'torch_file': torch.__file__,"
                     " 'mixlib_file': mixlib.__file__}))\n")
    done = subprocess.run([python, "-c", script], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=840)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["torch"] == torch.__version__
    assert Path(report["torch_file"]).resolve() == Path(torch.__file__).resolve(), \
        "the cell replaced the preinstalled torch"
    assert not (fresh_site / "torch").exists(), "pip installed a second torch"
    assert Path(report["mixlib_file"]).resolve().is_relative_to(fresh_site.resolve()), \
        f"mixlib was not installed into the fresh environment: {report['mixlib_file']}"
    assert "mixlib" in done.stdout and f"torch {torch.__version__}" in done.stdout
