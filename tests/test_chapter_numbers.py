"""The sweep's tables are generated, but the prose of chapters 6 and 8 quotes some of their
numbers by hand: paired differences a − b in accuracy points and their 95% intervals. Every
one of them must be a number the committed runs give, so that a run which moves a verdict
cannot leave the prose behind (the chapter then fails here until its text is brought up to
date)."""
import json
import re
from pathlib import Path

import pytest

from mixlib import protocol, results

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [ROOT / "notebooks" / name
            for name in ("06_conv_meets_attention.ipynb", "08_side_by_side.ipynb")]
SIGNED = r"[+−-]\d+\.\d\d"  # the book writes differences with a sign, two decimals, "−" for minus
# "+0.64 points [−4.10, +5.38]", "(−3.70 points, [−7.19, −0.20])", "+1.17 [−0.08, +2.42]"
INTERVAL = re.compile(rf"({SIGNED})(?: points)?,? \[({SIGNED}), ({SIGNED})\]")
BARE_INTERVAL = re.compile(rf"\[({SIGNED}), ({SIGNED})\]")  # "interval [−4.03, −2.80]"
# every other signed two-decimal number of the prose is a difference too, "points" or not
POINTS = re.compile(rf"(?<![\w.])({SIGNED})(?!\d)")


def _signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def _normalised(text: str) -> str:
    return text.replace("-", "−")


def given_by(runs: list[dict]) -> tuple[set[tuple[str, str, str]], set[str]]:
    """What the runs let the prose quote: every claim's (mean, low, high) over the seeds it
    has (an interval may be quoted without its mean), and every difference in points (a
    claim's mean, or one seed's a − b), as the book prints them."""
    intervals, points = set(), set()
    for row in results.verdicts(runs):
        for difference in row["differences"]:
            if difference["n"]:
                points.add(_signed(difference["mean"]))
            if difference["n"] > 1:
                intervals.add(tuple(_signed(difference[k]) for k in ("mean", "low", "high")))
    for claim in protocol.CLAIMS:
        epochs = protocol.EPOCHS if claim.data == "cifar10" else protocol.IMAGENETTE_EPOCHS
        def acc(preset):
            return results.accuracies(runs, protocol.model_name(preset, claim.data),
                                      epochs=epochs, dataset=claim.data)
        a = acc(claim.a)
        for rival in claim.rivals:
            b = acc(rival)
            points |= {_signed(100 * (a[s] - b[s])) for s in set(a) & set(b)}
    return intervals, points


def unsupported(text: str, runs: list[dict]) -> list[str]:
    """The differences and intervals quoted in `text` that `runs` do not give."""
    intervals, points = given_by(runs)
    text = text.replace("\n", " ")
    missing = [m.group(0) for m in INTERVAL.finditer(text)
               if tuple(_normalised(g) for g in m.groups()) not in intervals]
    text = INTERVAL.sub("", text)  # a mean quoted with its interval was checked with it
    ends = {(low, high) for _, low, high in intervals}
    missing += [m.group(0) for m in BARE_INTERVAL.finditer(text)
                if tuple(_normalised(g) for g in m.groups()) not in ends]
    text = BARE_INTERVAL.sub("", text)
    missing += [m.group(0) for m in POINTS.finditer(text) if _normalised(m.group(1)) not in points]
    return missing


def _prose(chapter: Path) -> str:
    cells = json.loads(chapter.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


@pytest.fixture(scope="module")
def runs():
    return results.load_runs(ROOT / "results" / "sweep")  # the runs the chapter was executed with


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_every_difference_a_chapter_quotes_is_one_the_runs_give(runs, chapter):
    prose = _prose(chapter)
    assert POINTS.search(prose)  # the check has something to check
    assert unsupported(prose, runs) == []


@pytest.mark.parametrize("quoted, found", [
    ("+0.65 points [−4.10, +5.38]", "+0.65 points [−4.10, +5.38]"),  # a mean off by 0.01
    ("+0.64 points [−4.10, +5.39]", "+0.64 points [−4.10, +5.39]"),  # an interval's end
    ("(+3.70 points, [+0.20, +7.19])", "+3.70 points, [+0.20, +7.19]"),  # the sign turned
    ("−9.16 points against DW conv", "−9.16"),  # one seed's difference, off by 0.01
    ("seeds 0 and 2 give −0.82 and +1.12", "−0.82"),  # without "points"
    ("−3.27 points, interval [−4.03, −2.81]", "[−4.03, −2.81]"),  # an interval without its mean
])
def test_the_check_finds_a_number_the_runs_do_not_give(runs, quoted, found):
    assert unsupported(f"Sliding windows won by {quoted}.", runs) == [found]


def test_the_check_reads_the_books_numbers_as_it_writes_them(runs):
    intervals, points = given_by(runs)
    mean, low, high = sorted(intervals)[0]
    assert unsupported(f"by {mean} points, [{low}, {high}], and", runs) == []
    assert unsupported(f"by {mean} [{low}, {high}]", runs) == []
    assert unsupported(f"by {mean.replace('−', '-')} points", runs) == []


def _printed_lines(notebook: Path) -> list[str]:
    """Every line a notebook's committed outputs print, stripped."""
    cells = json.loads(notebook.read_text())["cells"]
    return [line.strip() for cell in cells for output in cell.get("outputs", [])
            for line in "".join(output.get("text", "")).splitlines()]


def stale_quotes(relations: list[str], chapters: dict[int, list[str]]) -> list[str]:
    """The lines the relations page quotes ("ch. N  mixer", then the line) that chapter N's
    committed outputs no longer print."""
    return [f"ch. {m.group(1)}: {quoted}" for m, quoted in zip(
                map(re.compile(r"ch\. (\d+)  \w+$").match, relations), relations[1:])
            if m and quoted not in chapters.get(int(m.group(1)), [])]


def test_the_relations_page_quotes_each_chapters_current_output():
    # the page reads the chapters' committed outputs when it runs: executed before one of
    # them, it quotes a number that chapter no longer prints
    chapters = {int(path.name[:2]): _printed_lines(path)
                for path in (ROOT / "notebooks").glob("0[1-8]_*.ipynb")}
    relations = _printed_lines(ROOT / "notebooks" / "99_relations.ipynb")
    assert sum(line.startswith("ch. ") for line in relations) >= 9
    assert stale_quotes(relations, chapters) == []
    # a quote that differs from what its chapter prints now is found
    at = next(i for i, line in enumerate(relations) if line.startswith("ch. 6 "))
    old = relations[:at + 1] + [relations[at + 1] + "0"] + relations[at + 2:]
    assert stale_quotes(old, chapters) == [f"ch. 6: {relations[at + 1]}0"]
