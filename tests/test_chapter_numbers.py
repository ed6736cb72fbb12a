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
# the book writes differences with a sign, two decimals (an interval's end more where two would
# put it on 0 or ±1: results._points), "−" for minus
SIGNED = r"[+−-]\d+\.\d{2,10}"
# "+0.64 points [−4.10, +5.38]", "(−3.70 points, [−7.19, −0.20])", "+1.17 [−0.08, +2.42]"
INTERVAL = re.compile(rf"({SIGNED})(?: points)?,? \[({SIGNED}), ({SIGNED})\]")
BARE_INTERVAL = re.compile(rf"\[({SIGNED}), ({SIGNED})\]")  # "interval [−4.03, −2.80]"
# every other signed two-decimal number of the prose is a difference too, "points" or not
POINTS = re.compile(rf"(?<![\w.])({SIGNED})(?!\d)")


def _signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def _end(value: float) -> str:
    """An interval's end as the verdict table prints it."""
    return results._points(value, protocol.MARGIN).replace("-", "−")


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


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
                intervals.add((_signed(difference["mean"]), _end(difference["low"]),
                               _end(difference["high"])))
            points |= {_signed(value) for value in difference["per_seed"]}
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


def _off(value: str, taken: set[str]) -> str:
    """`value` moved by the smallest step of 0.01 that no run gives (the runs still to come
    could give any fixed mutant)."""
    number = _number(value)
    step = 1
    while _signed(number + 0.01 * step) in taken:
        step += 1
    return _signed(number + 0.01 * step)


def test_the_check_finds_a_number_the_runs_do_not_give(runs):
    intervals, points = given_by(runs)
    mean, low, high = sorted(intervals)[0]
    seed = sorted(points)[0]
    ends = {e for _, lo, hi in intervals for e in (lo, hi)}
    cases = {  # the quoted text: what the check must name
        f"{_off(mean, points)} points [{low}, {high}]": None,  # a mean off
        f"{mean} points [{low}, {_off(high, ends)}]": None,  # an interval's end
        # the sign turned
        f"{_signed(-_number(mean))} points, [{_signed(-_number(high))}, "
        f"{_signed(-_number(low))}]": None,
        f"{_off(seed, points)} points against DW conv": _off(seed, points),  # one seed's
        f"seeds 0 and 2 give {_off(seed, points)} and {seed}": _off(seed, points),  # no "points"
        f"{seed} points, interval [{low}, {_off(high, ends)}]": f"[{low}, {_off(high, ends)}]",
    }
    for quoted, found in cases.items():
        expected = found or quoted
        assert unsupported(f"Sliding windows won by {quoted}.", runs) == [expected], quoted


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


def _rounding_hidden(line: str) -> str:
    """`line` with every printed error below 1e-12 (float64's rounding, which a re-execution
    on another CPU may change) written as "<1e-12"; other numbers stay as printed."""
    return re.sub(r"\d\.\de[+-]\d+", lambda m: "<1e-12" if float(m.group()) < 1e-12
                  else m.group(), line)


def stale_quotes(relations: list[str], chapters: dict[int, list[str]]) -> list[str]:
    """The lines the relations page quotes ("ch. N  mixer", then the line) that chapter N's
    committed outputs no longer print (rounding errors below 1e-12 aside)."""
    printed = {n: {_rounding_hidden(line) for line in lines} for n, lines in chapters.items()}
    return [f"ch. {m.group(1)}: {quoted}" for m, quoted in zip(
                map(re.compile(r"ch\. (\d+)  \w+$").match, relations), relations[1:])
            if m and _rounding_hidden(quoted) not in printed.get(int(m.group(1)), set())]


def test_the_relations_page_quotes_each_chapters_current_output():
    # the page reads the chapters' committed outputs when it runs: executed before one of
    # them, it quotes a number that chapter no longer prints
    chapters = {int(path.name[:2]): _printed_lines(path)
                for path in (ROOT / "notebooks").glob("0[1-8]_*.ipynb")}
    relations = _printed_lines(ROOT / "notebooks" / "99_relations.ipynb")
    assert sum(line.startswith("ch. ") for line in relations) >= 9
    assert stale_quotes(relations, chapters) == []
    # a quote that differs from what its chapter prints now is found; a rounding error that
    # another CPU prints otherwise is not a difference
    at = next(i for i, line in enumerate(relations) if line.startswith("ch. 6 "))
    quoted = relations[at + 1]
    assert re.search(r"= \d\.\de-\d+$", quoted), quoted
    for changed, stale in ((quoted + " (old)", True), (quoted[:-7] + "5.5e-17", False),
                           (quoted[:-7] + "5.5e-10", True)):
        old = relations[:at + 1] + [changed] + relations[at + 2:]
        assert stale_quotes(old, chapters) == ([f"ch. 6: {changed}"] if stale else []), changed


NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"]
# "Of the sixteen claims, twelve are decided: one reproduces, four are contradicted and seven
# are undecided at this scale; four are pending", or once none is pending "All sixteen claims
# are decided: ..."
TALLY = re.compile(r"(?:Of the (\w+) claims, (\w+) (?:are|is)|All (\w+) claims are) decided: "
                   r"(.*?)(?:\.|$)")
COUNTED = {"reproduces": r"(\w+) reproduces?", "contradicts": r"(\w+) (?:are|is) contradicted",
           "undecided": r"(\w+) (?:are|is) undecided", "pending": r"(\w+) (?:are|is) pending"}


def tally_said(prose: str) -> dict[str, int]:
    """The counts of claims a chapter's tally sentence gives, by verdict (a verdict it does
    not name: none), with "claims" and "decided"."""
    found = TALLY.search(" ".join(prose.split()))
    assert found, "no tally sentence (\"Of the N claims, M are decided: ...\")"
    of_the, decided, all_of, counts = found.groups()
    words = {"claims": of_the or all_of, "decided": decided or all_of}
    words |= {verdict: (re.search(pattern, counts) or [None, "no"])[1]
              for verdict, pattern in COUNTED.items()}
    return {key: NUMBER_WORDS.index(word.lower()) for key, word in words.items()}


def tally_given(runs: list[dict]) -> dict[str, int]:
    verdicts = [row["verdict"].split()[0] for row in results.verdicts(runs)]  # "undecided at..."
    counts = {verdict: verdicts.count(verdict) for verdict in COUNTED}
    return counts | {"claims": len(verdicts), "decided": len(verdicts) - counts["pending"]}


def test_chapter_8s_tally_of_verdicts_is_the_runs(runs):
    # the Summary counts the verdicts in words: a run that decides a pending claim must move it
    prose = _prose(CHAPTERS[1])
    assert tally_said(prose) == tally_given(runs)
    # the check reads a stale tally as one
    given = tally_given(runs)
    other = NUMBER_WORDS[(given["decided"] + 1) % len(NUMBER_WORDS)]
    stale = (f"Of the {NUMBER_WORDS[given['claims']]} claims, {other} are decided: one "
             f"reproduces, four are contradicted; five are pending.")
    assert tally_said(stale) != given
    # "All N claims are decided" says none is pending, whatever the runs give
    done = tally_said("All sixteen claims are decided: one reproduces, five are contradicted "
                      "and ten are undecided at this scale.")
    assert done == {"claims": 16, "decided": 16, "reproduces": 1, "contradicts": 5,
                    "undecided": 10, "pending": 0}
