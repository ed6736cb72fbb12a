"""Every chapter opens with what the reader will learn and closes with a summary and further
reading (issue 20: "for each chapter: learning objectives at the top, a summary and further
reading at the end").

Objectives are a bold "You will learn" or "After this chapter you can" in the first cell; the
summary and the further reading are level-2 headings of the chapter's last markdown cells,
the further reading after the summary, with at least one citation.
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
OBJECTIVES = re.compile(r"\*\*(You will learn|After this chapter you can)\b")


def markdown_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def headings(text: str) -> list[str]:
    return [line[3:].strip() for line in text.splitlines() if line.startswith("## ")]


def ending(path: Path) -> str:
    """The markdown from the chapter's summary heading on (empty if it has none)."""
    text = "\n".join(markdown_cells(path))
    found = [m.start() for m in re.finditer(r"^## Summary", text, re.MULTILINE)]
    return text[found[-1]:] if found else ""


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_chapter_states_its_objectives_first(path):
    assert OBJECTIVES.search(markdown_cells(path)[0]), "no learning objectives in the first cell"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_chapter_ends_with_a_summary_then_further_reading(path):
    end = ending(path)
    assert end, "no '## Summary' heading"
    assert "Further reading" in headings(end), "no '## Further reading' after the summary"
    reading = end[end.index("## Further reading"):]
    assert "{cite:" in reading, "the further reading cites nothing"


def test_the_checks_tell_a_chapter_without_them(tmp_path):
    chapter = {"cells": [{"cell_type": "markdown", "source": ["# 1. A title\n", "Text."]},
                         {"cell_type": "markdown", "source": ["## Summary\n", "- a point"]}]}
    path = tmp_path / "chapter.ipynb"
    path.write_text(json.dumps(chapter))
    assert not OBJECTIVES.search(markdown_cells(path)[0])
    assert ending(path) and "Further reading" not in headings(ending(path))
