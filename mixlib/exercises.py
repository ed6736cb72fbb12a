"""Student copies of the chapters: solutions out, checks in.

    python -m mixlib.exercises strip notebooks -o student/

Every code cell tagged ``solution`` becomes a stub that raises NotImplementedError, and the
``{solution-start}`` / ``{solution-end}`` markdown cells around it are dropped; the exercise
text and the cell of asserts after it stay. Outputs are cleared, so a student starts from a
clean notebook, and a teacher can grade a handed-in copy with
``pytest --nbval-lax student/<chapter>.ipynb``: it passes once every check passes.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from .data import atomic_write

__all__ = ["strip_notebook", "strip_folder", "main"]

STUB = "# Exercise: write your solution here, then run the check below.\nraise NotImplementedError(\"exercise\")"


# a gated solution's opening and closing fences, with their options
SOLUTION_FENCE = re.compile(r"```\{solution-(start|end)\}[^\n]*\n(?::[^\n]*\n)*```\n?")


def strip_notebook(notebook: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy of `notebook` without solutions; returns it and the number of stubs."""
    stripped = nbformat.from_dict(notebook)
    cells, stubs = [], 0
    for cell in stripped.cells:
        if cell.cell_type == "markdown":
            cell.source = SOLUTION_FENCE.sub("", cell.source + "\n").strip()
            if not cell.source:
                continue
        if cell.cell_type == "code":
            if "solution" in cell.get("metadata", {}).get("tags", []):
                cell.source = STUB
                cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != "solution"] + ["exercise"]
                stubs += 1
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    stripped.cells = cells
    return stripped, stubs


def strip_folder(source: Path, target: Path) -> dict[str, int]:
    """Write a student copy of every notebook in `source` into `target`; {name: stubs}."""
    if not source.is_dir():
        raise ValueError(f"source must be a folder of notebooks, got {source}")
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in sorted(source.glob("*.ipynb")):
        stripped, stubs = strip_notebook(nbformat.read(path, as_version=4))
        atomic_write(target / path.name, lambda tmp: nbformat.write(stripped, tmp))
        written[path.name] = stubs
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixlib.exercises", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    strip = sub.add_parser("strip", help="write student copies without solutions")
    strip.add_argument("source", type=Path, help="a folder of notebooks")
    strip.add_argument("-o", "--output", type=Path, required=True, help="where the copies go")
    args = parser.parse_args(argv)
    written = strip_folder(args.source, args.output)
    for name, stubs in written.items():
        print(f"{args.output / name}: {stubs} exercise(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
