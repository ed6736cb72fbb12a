"""Student copies: solutions become stubs, checks stay, and a student copy fails its checks
until the exercises are solved."""
from pathlib import Path

import nbformat
import pytest

from mixlib import exercises

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_every_chapter_with_exercises_is_stripped(tmp_path):
    written = exercises.strip_folder(NOTEBOOKS, tmp_path)
    assert written["01_one_formula.ipynb"] == 2
    for name, stubs in written.items():
        student = nbformat.read(tmp_path / name, as_version=4)
        text = "\n".join(c.source for c in student.cells)
        assert "solution-start" not in text and "solution-end" not in text
        assert text.count("raise NotImplementedError") == stubs
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
        original = nbformat.read(NOTEBOOKS / name, as_version=4)
        checks = [c.source for c in original.cells if c.cell_type == "code" and "assert" in c.source
                  and "solution" not in c.metadata.get("tags", [])]
        assert all(check in text for check in checks)  # the checks are kept word for word


def test_a_student_copy_fails_until_solved(tmp_path):
    """Run chapter 1's student copy: it stops at the first stub; with the solution pasted back
    into the stub, the same notebook runs through its checks."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    exercises.strip_folder(NOTEBOOKS, tmp_path)
    student = nbformat.read(tmp_path / "01_one_formula.ipynb", as_version=4)
    with pytest.raises(CellExecutionError, match="NotImplementedError"):
        NotebookClient(student, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    solutions = [c.source for c in nbformat.read(NOTEBOOKS / "01_one_formula.ipynb", as_version=4).cells
                 if "solution" in c.metadata.get("tags", [])]
    stubs = [c for c in student.cells if "exercise" in c.metadata.get("tags", [])]
    for cell, solution in zip(stubs, solutions):
        cell.source = solution
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    NotebookClient(student, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()


def test_cli(tmp_path, capsys):
    assert exercises.main(["strip", str(NOTEBOOKS), "-o", str(tmp_path / "student")]) == 0
    assert "01_one_formula.ipynb: 2 exercise(s)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="folder"):
        exercises.strip_folder(tmp_path / "missing", tmp_path / "out")
