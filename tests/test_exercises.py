"""The chapters' exercises: nbgrader's format, the copies the tool makes, and checks that reject
wrong answers.

The mutation test runs every exercise of chapters 1-8 on its own, in a fresh namespace: the
notebook's setup cell, the chapter's `setup-exercises` cell, then the exercise's cells with its
solution cell replaced by one candidate answer. The reference solution must pass every check
(hidden tests included); the students' stub must stop with NotImplementedError; and each wrong
answer in tests/exercise_mutants/<label>.py (a `# %% mutant: NAME` section each, described in
a comment under its name) must run and then fail a check the students can see with an
AssertionError.
"""
import functools
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mixlib import exercises

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MUTANTS = Path(__file__).resolve().parent / "exercise_mutants"
# the chapters with exercises; a later chapter joins when it gets exercises
PENDING: set[str] = set()
CHAPTERS = sorted(p.name for p in NOTEBOOKS.glob("0[1-8]_*.ipynb"))
KINDS = ("Implement", "Derive", "Predict, then run", "Question")


@functools.lru_cache(maxsize=None)
def notebook(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def mutants(label):
    """{name: (description, code)} of the wrong answers kept for exercise `label`."""
    path = MUTANTS / f"{label}.py"
    found = {}
    for name, code in exercises.read_sections(path.read_text()).items():
        assert name.startswith("mutant: "), f"{path}: section '{name}' is not '# %% mutant: NAME'"
        description, _, body = code.partition("\n")
        assert description.startswith("# ") and body.strip(), f"{path}: {name} needs a '# ' description"
        found[name[len("mutant: "):]] = (description[2:], body)
    return found


def candidates():
    for name in CHAPTERS:
        for label in exercises.exercises_of(notebook(name))[1]:
            yield pytest.param(name, label, "solution", id=f"{label}-solution")
            yield pytest.param(name, label, "stub", id=f"{label}-stub")
            if (MUTANTS / f"{label}.py").exists():
                for mutant in mutants(label):
                    yield pytest.param(name, label, mutant, id=f"{label}-{mutant}")


def run_exercise(nb, label, answer, student_checks):
    """Run exercise `label` of `nb` with `answer` as its solution cell; returns None, or the
    exception and the role of the cell that raised it ('solution', 'check' or 'reveal')."""
    setup, found = exercises.exercises_of(nb)
    exercise = found[label]
    namespace = {"__name__": "__main__"}
    for i in setup:
        exec(compile(nb.cells[i].source, f"<{label}: setup cell {i}>", "exec"), namespace)
    for i in exercise.cells:
        source = nb.cells[i].source
        role = "solution" if i == exercise.solution else "check" if i in exercise.checks else "reveal"
        if role == "solution":
            source = answer
        elif role == "check" and student_checks:
            source, _ = exercises.clear_hidden_tests(source)
        try:
            exec(compile(source, f"<{label}: {role} cell {i}>", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - the caller decides which failures are right
            return error, role
    return None


@pytest.mark.parametrize("name, label, candidate", list(candidates()))
def test_checks_reject_wrong_answers(name, label, candidate, monkeypatch):
    monkeypatch.setenv("MIXLIB_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = notebook(name)
    solution = nb.cells[exercises.exercises_of(nb)[1][label].solution].source
    if candidate == "solution":
        assert run_exercise(nb, label, solution, student_checks=False) is None
    elif candidate == "stub":
        stub, replaced = exercises.clear_solutions(solution)
        assert replaced and "raise NotImplementedError()" in stub
        failure = run_exercise(nb, label, stub, student_checks=True)
        # raised where the student's code runs (the stub itself, or a check calling it), so a
        # check that never calls the answer cannot pass here on a later cell's call
        assert failure is not None and isinstance(failure[0], NotImplementedError), failure
        assert failure[1] in ("solution", "check"), failure
    else:
        description, code = mutants(label)[candidate]
        failure = run_exercise(nb, label, code, student_checks=True)
        assert failure is not None, f"the checks pass a wrong answer: {description}"
        error, role = failure
        assert role == "check" and isinstance(error, AssertionError), \
            f"the wrong answer '{description}' should run and fail a check, got {role}: {error!r}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_has_five_exercises_of_several_kinds(name):
    nb = notebook(name)
    found = exercises.exercises_of(nb)[1]
    assert len(found) >= 5
    kinds = set()
    for label, exercise in found.items():
        text = nb.cells[exercise.text].source
        kind = next((k for k in KINDS if f"**{k}.** Teaches: " in text), None)
        assert kind, f"{label} does not say its kind and what it teaches"
        kinds.add(kind)
        assert len(mutants(label)) >= 2, f"{label} needs at least two wrong answers"
    assert len(kinds) >= 3


def test_every_mutant_file_belongs_to_an_exercise():
    labels = {label for name in CHAPTERS for label in exercises.exercises_of(notebook(name))[1]}
    assert {p.stem for p in MUTANTS.glob("*.py")} == labels


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb") if p.name not in PENDING))
def test_nbgrader_metadata_is_valid(name):
    assert exercises.validate_notebook(notebook(name)) == []


def test_validation_finds_broken_metadata():
    nb = nbformat.from_dict(notebook(CHAPTERS[0]))
    _, found = exercises.exercises_of(nb)
    first = next(iter(found.values()))
    del nb.cells[first.checks[0]].metadata["nbgrader"]["points"]
    nb.cells[first.solution].metadata["nbgrader"]["grade_id"] = "has space"
    nb.cells[first.text].source += "\n### BEGIN SOLUTION"
    nb.cells[first.checks[0]].metadata["tags"].remove("hide-output")
    problems = "\n".join(exercises.validate_notebook(nb))
    assert "needs points" in problems and "has space" in problems
    assert f"cell {first.checks[0]} shows its output" in problems
    assert "solution region outside a solution cell" in problems


def test_clearing_follows_nbgrader():
    """nbgrader's rules: the region is replaced by the stub indented like its first line; a
    solution cell without a region is replaced whole; hidden tests vanish with their markers."""
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\ny = 1"
    assert exercises.clear_solutions(source) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\ny = 1", True)
    assert exercises.clear_hidden_tests("a\n### BEGIN HIDDEN TESTS\nb\n### END HIDDEN TESTS\nc") == ("a\nc", True)
    with pytest.raises(ValueError, match="without"):
        exercises.clear_solutions("### BEGIN SOLUTION\nx = 1")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {
        "grade": False, "grade_id": "x", "locked": False, "schema_version": 3, "solution": True}})])
    nb.cells.append(nbformat.v4.new_code_cell("y = 2", metadata={"tags": ["solution"]}))  # older format
    student, count = exercises.student_notebook(nb)
    assert count == 2 and [c.source for c in student.cells] == [exercises.CODE_STUB] * 2


def test_a_student_copy_fails_every_check_until_solved(tmp_path, monkeypatch):
    """Chapter 1's students' copy, run whole as nbval runs it: every check cell fails, and no
    cell outside the exercises does."""
    from nbclient import NotebookClient

    monkeypatch.setenv("MIXLIB_QUICK", "1")
    student, _ = exercises.student_notebook(notebook(CHAPTERS[0]))
    NotebookClient(student, timeout=600, allow_errors=True,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    failed = {i for i, c in enumerate(student.cells) if c.cell_type == "code"
              and any(o.output_type == "error" for o in c.outputs)}
    _, found = exercises.exercises_of(student)
    checks = {i for exercise in found.values() for i in exercise.checks}
    solutions = {exercise.solution for exercise in found.values()}
    assert checks <= failed and failed <= checks | solutions


def test_student_copies(tmp_path, capsys):
    assert exercises.main(["student", str(NOTEBOOKS), "-o", str(tmp_path)]) == 0
    assert "01_one_formula.ipynb: 5 exercise(s)" in capsys.readouterr().out
    for name in CHAPTERS:
        original, student = notebook(name), nbformat.read(tmp_path / name, as_version=4)
        text = "\n".join(c.source for c in student.cells)
        for gone in ("BEGIN SOLUTION", "HIDDEN TESTS", "solution-start", "solution-end"):
            assert gone not in text, f"{name} keeps '{gone}'"
        assert text.count("raise NotImplementedError()") == sum(
            c.source.count("BEGIN SOLUTION") for c in original.cells)
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
        _, found = exercises.exercises_of(original)
        by_id = {c.id: c for c in student.cells}
        for exercise in found.values():
            for i in exercise.checks:  # the visible checks stay word for word, locked
                check = by_id[original.cells[i].id]
                assert check.source == exercises.clear_hidden_tests(original.cells[i].source)[0]
                assert check.metadata["editable"] is False and check.metadata["deletable"] is False
    with pytest.raises(ValueError, match="folder"):
        exercises.write_folder(tmp_path / "missing", tmp_path / "out", exercises.student_notebook)


def test_course_copy_keeps_private_tests_out_of_the_students_copy(tmp_path):
    private = tmp_path / "private_tests.py"
    private.write_text("# %% ex-pooling\nassert pooling_weights(3, 3).sum() == 0  # rows sum to 0\n")
    chapter = NOTEBOOKS / CHAPTERS[0]
    assert exercises.main(["source", str(chapter), "-o", str(tmp_path / "source"),
                           "--hidden-tests", str(private)]) == 0
    course = nbformat.read(tmp_path / "source" / chapter.name, as_version=4)
    check = course.cells[exercises.exercises_of(course)[1]["ex-pooling"].checks[-1]]
    assert check.source.endswith("### BEGIN HIDDEN TESTS\nassert pooling_weights(3, 3).sum() == 0  "
                                 "# rows sum to 0\n### END HIDDEN TESTS")
    assert exercises.validate_notebook(course) == []
    assert exercises.main(["student", str(tmp_path / "source"), "-o", str(tmp_path / "student")]) == 0
    student = (tmp_path / "student" / chapter.name).read_text()
    assert "rows sum to 0" not in student and "pooling_weights(4, 5)" not in student
    private.write_text("# %% ex-nothing\nassert False\n")
    with pytest.raises(SystemExit, match="ex-nothing"):
        exercises.main(["source", str(chapter), "-o", str(tmp_path / "x"), "--hidden-tests", str(private)])


def test_check_command(tmp_path, capsys):
    assert exercises.main(["check", str(NOTEBOOKS / CHAPTERS[0])]) == 0
    broken = nbformat.from_dict(notebook(CHAPTERS[0]))
    check = exercises.exercises_of(broken)[1]["ex-pooling"].checks[0]
    broken.cells[check].metadata["nbgrader"]["points"] = -1
    nbformat.write(broken, tmp_path / "broken.ipynb")
    assert exercises.main(["check", str(tmp_path / "broken.ipynb")]) == 1
    assert "needs points" in capsys.readouterr().out


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "mixlib.exercises", "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0 and "student" in result.stdout and "hidden-tests" in result.stdout


def test_nbgrader_makes_the_same_student_copy(tmp_path, monkeypatch):
    """nbgrader's own generate_assignment, run on the chapters, writes the copies the tool
    writes, apart from the book's solution fences, which only the tool removes. Runs where
    nbgrader is installed (`pip install -e .[grading]`), else it is skipped."""
    pytest.importorskip("nbgrader")
    # nbgrader runs the `alembic` command of its environment
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    source = tmp_path / "course" / "source" / "mixers"
    source.mkdir(parents=True)
    for name in CHAPTERS:
        nbformat.write(notebook(name), source / name)
    config = Config()
    config.CourseDirectory.root = str(tmp_path / "course")
    config.CourseDirectory.course_id = "mixers"
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    result = api.generate_assignment("mixers")
    assert result["success"], result.get("error") or result.get("log")
    for name in CHAPTERS:
        theirs = nbformat.read(tmp_path / "course" / "release" / "mixers" / name, as_version=4)
        ours, _ = exercises.student_notebook(notebook(name))
        kept = []
        for cell in theirs.cells:
            if cell.cell_type == "markdown":
                cell.source = exercises.SOLUTION_FENCE.sub("", cell.source + "\n").strip()
                if not cell.source:
                    continue
            kept.append(cell)
        assert [c.cell_type for c in kept] == [c.cell_type for c in ours.cells]
        for mine, their in zip(ours.cells, kept):
            assert mine.source == their.source
            for key in ("editable", "deletable"):
                assert mine.metadata.get(key) == their.metadata.get(key)
            if "nbgrader" in mine.metadata:
                extra = {"checksum", "cell_type"}
                assert mine.metadata["nbgrader"] == {k: v for k, v in their.metadata["nbgrader"].items()
                                                     if k not in extra}
