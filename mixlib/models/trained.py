"""The comparison's trained weights: each small preset as seed 0 of the sweep left it.

    from mixlib import models
    net = models.trained("dwconv_cifar")      # the preset, with its trained weights, in eval mode

The weights are the final moving average of the weights of the sweep's seed-0 run (what that run
reports as its test accuracy), kept in float16 under ``results/weights/<name>.pt`` by
``python -m mixlib.sweep``; ``MIXLIB_WEIGHTS`` names another folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..files import load_checked
from .presets import build

__all__ = ["trained", "weights_folder"]


def weights_folder() -> Path:
    """``MIXLIB_WEIGHTS``, else ``results/weights`` in the checkout mixlib runs from."""
    return Path(os.environ.get("MIXLIB_WEIGHTS", Path(__file__).resolve().parents[2] / "results" / "weights"))


def trained(name: str, *, folder: str | os.PathLike | None = None) -> torch.nn.Module:
    """Small preset `name` with the sweep's trained weights (float32, eval mode); its record
    (the run, its test accuracy, the commit) is the model's ``trained_from`` attribute."""
    path = Path(folder or weights_folder()) / f"{name}.pt"
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.pt")) if path.parent.is_dir() else []
        # a mixlib installed with pip (Colab) has no results/ beside it
        hint = ("; pass folder=mixlib.results.results_folder() / 'weights', which fetches "
                "them" if not path.parent.is_dir() else "")
        raise FileNotFoundError(f"no trained weights for name={name!r} in {path.parent} "
                                f"(trained so far: {', '.join(have) or 'none'}{hint})")
    record = load_checked(path, ValueError, what="trained weights ", map_location="cpu",
                          weights_only=True, remedy="restore it from the repository "
                          "(git checkout -- results/weights) or fetch it again")
    model = build(name)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in record.pop("state_dict").items()})
    model.trained_from = record
    return model.eval()
