"""The comparison's trained weights: each small preset as seed 0 of the sweep left it.

    from mixlib import models
    net = models.trained("dwconv_cifar")      # the preset, with its trained weights, in eval mode

The weights are the final moving average of the weights of the sweep's seed-0 run (what that run
reports as its test accuracy), kept in float16 under ``results/weights/<name>.pt`` by
``python -m mixlib.sweep``; ``MIXLIB_WEIGHTS`` names another folder. A mixlib installed without
the repository (Colab) finds them where the chapters find every result, ``paths.results_folder``
(a shallow clone in the cache).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..files import load_checked
from ..paths import results_folder
from .presets import build

__all__ = ["trained", "weights_folder"]


def weights_folder() -> Path:
    """``MIXLIB_WEIGHTS``, else ``weights/`` in the results folder (``paths.results_folder``:
    ``$MIXLIB_RESULTS``, the checkout mixlib runs from, or a clone of the repository)."""
    if os.environ.get("MIXLIB_WEIGHTS"):
        return Path(os.environ["MIXLIB_WEIGHTS"])
    return results_folder() / "weights"


def trained(name: str, *, folder: str | os.PathLike | None = None) -> torch.nn.Module:
    """Small preset `name` with the sweep's trained weights (float32, eval mode); its record
    (the run, its test accuracy, the commit) is the model's ``trained_from`` attribute."""
    path = Path(folder or weights_folder()) / f"{name}.pt"
    if not path.is_file():
        if not path.parent.is_dir():
            raise FileNotFoundError(f"no trained weights for name={name!r}: there is no folder "
                                    f"{path.parent}")
        have = sorted(p.stem for p in path.parent.glob("*.pt"))
        raise FileNotFoundError(f"no trained weights for name={name!r} in {path.parent} "
                                f"(trained so far: {', '.join(have) or 'none'})")
    record = load_checked(path, ValueError, what="trained weights ", map_location="cpu",
                          weights_only=True, remedy="restore it from the repository "
                          "(git checkout -- results/weights) or fetch it again")
    model = build(name)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in record.pop("state_dict").items()})
    model.trained_from = record
    return model.eval()
