"""The book's small presets are the models of a running comparison: a refactor of how they
are assembled (the mixer registry's fits, models.small) must build them bit for bit as before.

tests/data/small_presets.json holds, per small preset, a digest of its parameter names and
shapes, a digest of its state dict after ``torch.manual_seed(0)``, and its float64 output on a
seeded batch, recorded before the mixers declared their own small-map fits (commit on branch
i24, issue 24). The record is the code's own output, a guard against change, not a proof of
correctness (tests/test_equivalences.py and tests/test_convert.py are those). Regenerate it
only for a deliberate change of a preset, which results/protocol.md's list of changes must
then record: ``python tests/test_small_presets_unchanged.py``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from mixlib import models
from mixlib.files import state_digest
from mixlib.models import small

RECORD = Path(__file__).resolve().parent / "data" / "small_presets.json"


def fingerprint(name: str) -> dict:
    torch.manual_seed(0)
    model = models.build(name).eval()
    shapes = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    state = state_digest(model.state_dict())
    size = 32 if name.endswith("_cifar") else 160
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        logits = model.double()(x)
    return {"shapes": state_digest(shapes), "state": state, "logits": logits.flatten().tolist()}


def _names() -> list[str]:
    return sorted(json.loads(RECORD.read_text())) if RECORD.is_file() else []


def test_every_small_preset_is_recorded():
    assert sorted(small.PRESETS) == _names()


@pytest.mark.parametrize("name", _names())
def test_small_preset_builds_as_recorded(name):
    expected = json.loads(RECORD.read_text())[name]
    got = fingerprint(name)
    assert got["shapes"] == expected["shapes"], "parameter names or shapes changed"
    assert got["state"] == expected["state"], "the seeded initialisation changed"
    # the same weights and input: the same logits up to the summation order of the machine
    torch.testing.assert_close(torch.tensor(got["logits"], dtype=torch.float64),
                               torch.tensor(expected["logits"], dtype=torch.float64),
                               rtol=1e-10, atol=1e-12)


if __name__ == "__main__":
    record = {name: fingerprint(name) for name in sorted(small.PRESETS)}
    RECORD.write_text(json.dumps(record, indent=0) + "\n")
    print(f"wrote {len(record)} presets to {RECORD}", file=sys.stderr)
