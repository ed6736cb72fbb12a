"""The chapters' exercises in nbgrader's format: student copies, course copies, a format check.

    python -m mixlib.exercises student notebooks -o student/
    python -m mixlib.exercises source notebooks -o course/source/mixers --hidden-tests private.py
    python -m mixlib.exercises check notebooks

Every exercise is a few cells with nbgrader cell metadata (schema version 3):

- the text, a markdown ``{exercise}`` whose label (``ex-...``) names the exercise;
- one solution cell (``solution: true``, ``grade_id`` = the label) whose answer sits between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION``; in the book it is shown behind a toggle by
  the ``{solution-start}`` / ``{solution-end}`` fences around it;
- optional read-only cells (``locked: true``, ``grade_id`` = label-reveal) that run an
  experiment after a prediction;
- one or more autograded check cells (``grade: true``, ``points``, ``grade_id`` = label-check),
  which may hold ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS`` regions.

Reveal and check cells carry the tag ``hide-output``: what they print names the answer, so the
book shows it behind a toggle, like the solution.

``student`` writes the copy ``nbgrader generate_assignment`` makes of these cells: each solution
region becomes ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` (indented like the
region), hidden-test regions are removed, outputs are cleared and locked cells are marked
read-only; the book's solution fences are dropped too. ``source`` writes a copy for a course's
private repository, with the teacher's own hidden tests added to the check cells (a file of
``# %% ex-label`` sections); nbgrader, or ``student``, makes the students' copy from it.
``check`` validates the metadata against nbgrader's schema and the layout above.

A student copy is graded with ``pytest --nbval-lax student/<chapter>.ipynb`` (with
``MIXLIB_QUICK=1``) or with nbgrader's autograder: every check fails until its exercise is solved.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = [
    "CODE_STUB", "Exercise", "clear_solutions", "clear_hidden_tests", "student_notebook",
    "source_notebook", "validate_notebook", "exercises_of", "read_sections", "write_folder",
    "main",
]

# nbgrader's delimiters and its Python stub (ClearSolutions.code_stub["python"], text_stub)
BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
SCHEMA_VERSION = 3
# nbgrader's cell metadata, schema version 3: required keys, and all keys it allows
REQUIRED_KEYS = {"schema_version", "grade", "locked", "solution"}
ALLOWED_KEYS = REQUIRED_KEYS | {"task", "grade_id", "points", "checksum", "cell_type"}
GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]*$")
ROLES = ("check", "reveal")  # grade_id suffixes of an exercise's other cells
HIDE_OUTPUT = "hide-output"  # Jupyter Book's tag: the output behind a toggle
SETUP_ID = "setup-exercises"  # the read-only cell of imports every exercise of a chapter uses
LABEL = re.compile(r"```\{exercise\}[^\n]*\n(?::[^\n]*\n)*?:label: (ex-[\w-]+)")
# a gated solution's opening and closing fences, with their options
SOLUTION_FENCE = re.compile(r"```\{solution-(start|end)\}[^\n]*\n(?::[^\n]*\n)*```\n?")
SECTION = re.compile(r"^# %% (.+)$", re.MULTILINE)


def _replace_regions(source: str, begin: str, end: str, stub: list[str] | None) -> tuple[str, bool]:
    """nbgrader's rule: a line containing `begin` opens a region, one containing `end` closes
    it; the region, delimiter lines included, becomes `stub` indented like the opening line."""
    lines, inside, found = [], False, False
    for line in source.split("\n"):
        if begin in line:
            if inside:
                raise ValueError(f"nested '{begin}' in:\n{source}")
            inside = found = True
            indent = re.match(r"\s*", line).group(0)
            lines += [indent + s for s in stub or []]
        elif end in line:
            inside = False
        elif not inside:
            lines.append(line)
    if inside:
        raise ValueError(f"'{begin}' without '{end}' in:\n{source}")
    return "\n".join(lines), found


def clear_solutions(source: str, cell_type: str = "code") -> tuple[str, bool]:
    """Replace every solution region by the stub, as nbgrader's ClearSolutions does."""
    stub = (CODE_STUB if cell_type == "code" else TEXT_STUB).split("\n")
    return _replace_regions(source, BEGIN_SOLUTION, END_SOLUTION, stub)


def clear_hidden_tests(source: str) -> tuple[str, bool]:
    """Remove every hidden-test region, as nbgrader's ClearHiddenTests does."""
    return _replace_regions(source, BEGIN_HIDDEN, END_HIDDEN, None)


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


@dataclass
class Exercise:
    """One exercise's cells, by index into the notebook's cells."""
    label: str
    text: int
    solution: int | None = None
    cells: list[int] = field(default_factory=list)  # its code cells in order, solution included
    checks: list[int] = field(default_factory=list)


def exercises_of(notebook) -> tuple[list[int], dict[str, Exercise]]:
    """The setup cells every exercise runs after (the notebook's first code cell and the
    read-only cell `setup-exercises`), and the exercises by label, in order."""
    setup, found = [], {}
    first_code = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "code"), None)
    if first_code is not None:
        setup.append(first_code)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            for label in LABEL.findall(cell.source):
                found[label] = Exercise(label, i)
        grade_id = _meta(cell).get("grade_id", "")
        if cell.cell_type != "code" or not grade_id:
            continue
        if grade_id == SETUP_ID:
            setup.append(i)
            continue
        label, role = grade_id, None
        for suffix in ROLES:
            if grade_id.endswith("-" + suffix) and grade_id[:-len(suffix) - 1] in found:
                label, role = grade_id[:-len(suffix) - 1], suffix
        if label not in found:
            continue
        exercise = found[label]
        exercise.cells.append(i)
        if role is None:
            exercise.solution = i
        elif role == "check":
            exercise.checks.append(i)
    return setup, found


def validate_notebook(notebook) -> list[str]:
    """What is wrong with `notebook`'s exercise cells, for nbgrader and for this book."""
    problems, ids = [], {}
    for i, cell in enumerate(notebook.cells):
        where = f"cell {i}"
        meta = _meta(cell)
        source = cell.source
        if BEGIN_SOLUTION in source and not meta.get("solution"):
            problems.append(f"{where}: a solution region outside a solution cell")
        if BEGIN_HIDDEN in source and not meta.get("grade"):
            problems.append(f"{where}: hidden tests outside a grade cell")
        try:
            clear_solutions(source, cell.cell_type)
            clear_hidden_tests(source)
        except ValueError as error:
            problems.append(f"{where}: {error}")
        if "nbgrader" not in cell.get("metadata", {}):
            continue
        missing, extra = REQUIRED_KEYS - meta.keys(), meta.keys() - ALLOWED_KEYS
        if missing or extra:
            problems.append(f"{where}: nbgrader metadata missing {sorted(missing)}, extra {sorted(extra)}")
            continue
        if meta["schema_version"] != SCHEMA_VERSION:
            problems.append(f"{where}: schema_version {meta['schema_version']}, not {SCHEMA_VERSION}")
        for key in ("grade", "locked", "solution", "task"):
            if key in meta and not isinstance(meta[key], bool):
                problems.append(f"{where}: nbgrader '{key}' must be true or false")
        grade_id = meta.get("grade_id")
        if meta["grade"] or meta["solution"] or meta["locked"]:
            if not grade_id or not isinstance(grade_id, str) or not GRADE_ID.match(grade_id):
                problems.append(f"{where}: grade_id {grade_id!r} is missing or not [a-zA-Z0-9_-]")
            elif grade_id in ids:
                problems.append(f"{where}: grade_id {grade_id!r} repeats cell {ids[grade_id]}")
            else:
                ids[grade_id] = i
        if meta["grade"]:
            points = meta.get("points")
            if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
                problems.append(f"{where}: a grade cell needs points >= 0, has {points!r}")
        elif "points" in meta:
            problems.append(f"{where}: points on a cell that is not graded")
        if cell.cell_type == "markdown" and meta["grade"] and not meta["solution"]:
            problems.append(f"{where}: a graded markdown cell must also be a solution cell")
    _, exercises = exercises_of(notebook)
    for label, exercise in exercises.items():
        if exercise.solution is None:
            problems.append(f"{label}: no solution cell (grade_id {label!r}, solution: true)")
        elif BEGIN_SOLUTION not in notebook.cells[exercise.solution].source:
            problems.append(f"{label}: the solution cell has no '### {BEGIN_SOLUTION}' region")
        if not exercise.checks:
            problems.append(f"{label}: no check cell (grade_id '{label}-check', grade: true)")
        elif exercise.solution is not None and exercise.checks[0] < exercise.solution:
            problems.append(f"{label}: a check comes before the solution")
        for i in exercise.cells:  # a check or a reveal prints the answer: the book folds it
            if i != exercise.solution and HIDE_OUTPUT not in notebook.cells[i].metadata.get("tags", []):
                problems.append(f"{label}: cell {i} shows its output, which gives the answer "
                                f"away: tag it '{HIDE_OUTPUT}'")
    return problems


def _lock(cell) -> None:
    """nbgrader's LockCells: solution cells cannot be deleted; grade and read-only cells cannot
    be deleted or edited."""
    meta = _meta(cell)
    if meta.get("solution"):
        cell.metadata["deletable"] = False
    elif meta.get("grade") or meta.get("locked"):
        cell.metadata["deletable"] = False
        cell.metadata["editable"] = False


def student_notebook(notebook):
    """The students' copy of `notebook` and its number of solution cells: solutions become
    nbgrader's stub, hidden tests go, outputs are cleared, the book's solution fences go."""
    student = nbformat.from_dict(notebook)
    cells, solutions = [], 0
    for cell in student.cells:
        if cell.cell_type == "markdown":
            cell.source = SOLUTION_FENCE.sub("", cell.source + "\n").strip()
            if not cell.source and "nbgrader" not in cell.metadata:
                continue
        source, replaced = clear_solutions(cell.source, cell.cell_type)
        # a code cell tagged "solution" without nbgrader metadata is the book's older format
        legacy = cell.cell_type == "code" and "solution" in cell.metadata.get("tags", [])
        if _meta(cell).get("solution") or legacy:
            solutions += 1
            if not replaced:  # a solution cell without a region is replaced whole
                source = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        cell.source, _ = clear_hidden_tests(source)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        _lock(cell)
        cells.append(cell)
    student.cells = cells
    return student, solutions


def read_sections(text: str) -> dict[str, str]:
    """`# %% name` sections of a Python file: {name: code}."""
    parts = SECTION.split(text)
    return {name.strip(): code.strip("\n") for name, code in zip(parts[1::2], parts[2::2])}


def source_notebook(notebook, hidden_tests: dict[str, str]):
    """A copy of `notebook` with the teacher's hidden tests {label: code} appended, between
    nbgrader's hidden-test delimiters, to each exercise's last check cell; outputs cleared."""
    course = nbformat.from_dict(notebook)
    _, exercises = exercises_of(course)
    for label, code in hidden_tests.items():
        if label not in exercises or not exercises[label].checks:
            raise ValueError(f"hidden tests for {label!r}, which is no exercise with a check here")
        cell = course.cells[exercises[label].checks[-1]]
        cell.source = f"{cell.source.rstrip()}\n### {BEGIN_HIDDEN}\n{code}\n### {END_HIDDEN}"
    for cell in course.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return course


def _notebooks(source: Path) -> list[Path]:
    if source.is_dir():
        return sorted(source.glob("*.ipynb"))
    if source.suffix == ".ipynb" and source.is_file():
        return [source]
    raise ValueError(f"source must be a notebook or a folder of notebooks, got {source}")


def write_folder(source: Path, target: Path, make) -> dict[str, int]:
    """Write make(notebook) -> (copy, count) for every notebook of `source` into `target`."""
    from .files import atomic_write

    paths = _notebooks(source)
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in paths:
        copy, count = make(nbformat.read(path, as_version=4))
        atomic_write(target / path.name, lambda tmp: nbformat.write(copy, tmp))
        written[path.name] = count
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixlib.exercises", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", aliases=["strip"],
                             help="students' copies: no solutions, no hidden tests, no outputs")
    source = sub.add_parser("source", help="a course's private copies, with its hidden tests")
    for command in (student, source):
        command.add_argument("source", type=Path, help="a notebook or a folder of notebooks")
        command.add_argument("-o", "--output", type=Path, required=True, help="where the copies go")
    source.add_argument("--hidden-tests", type=Path,
                        help="a Python file of '# %%%% ex-label' sections, each the hidden tests of one exercise")
    check = sub.add_parser("check", help="validate the exercises' nbgrader metadata and layout")
    check.add_argument("source", type=Path, help="a notebook or a folder of notebooks")
    args = parser.parse_args(argv)

    if args.command == "check":
        failed = False
        for path in _notebooks(args.source):
            notebook = nbformat.read(path, as_version=4)
            problems = validate_notebook(notebook)
            failed |= bool(problems)
            for problem in problems:
                print(f"{path}: {problem}")
            print(f"{path}: {len(exercises_of(notebook)[1])} exercise(s), "
                  f"{'ok' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if failed else 0
    if args.command == "source":
        tests = read_sections(args.hidden_tests.read_text()) if args.hidden_tests else {}
        labels = set()
        for path in _notebooks(args.source):
            labels |= set(exercises_of(nbformat.read(path, as_version=4))[1])
        unknown = sorted(set(tests) - labels)
        if unknown:
            raise SystemExit(f"hidden tests for unknown exercises: {', '.join(unknown)}")

        def make(notebook):
            mine = {k: v for k, v in tests.items() if k in exercises_of(notebook)[1]}
            return source_notebook(notebook, mine), len(mine)
        written = write_folder(args.source, args.output, make)
        for name, count in written.items():
            print(f"{args.output / name}: hidden tests for {count} exercise(s)")
        return 0
    written = write_folder(args.source, args.output, student_notebook)
    for name, stubs in written.items():
        print(f"{args.output / name}: {stubs} exercise(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
