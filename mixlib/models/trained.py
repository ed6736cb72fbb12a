"""The comparison's trained weights: each small preset as seed 0 of the sweep left it.

    from mixlib import models
    net = models.trained("dwconv_cifar")      # the preset, with its trained weights, in eval mode

The weights are the final moving average of the weights of the sweep's seed-0 run (what that run
reports as its test accuracy), kept in float16 under ``results/weights/<name>.pt`` by
``python -m mixlib.sweep``. Without ``folder=`` they are read from ``MIXLIB_WEIGHTS`` if set,
else from ``weights/`` in the results folder, where the chapters find every result
(``paths.results_folder``: ``MIXLIB_RESULTS``, the checkout mixlib runs from, or for a mixlib
installed without the repository, Colab's, a shallow clone of it in the cache).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..files import load_checked
from ..paths import results_folder
from . import small
from .presets import build

__all__ = ["trained", "weights_folder"]


def _default_folder() -> tuple[Path, str]:
    """The weights folder without ``folder=``, and what named it (for errors)."""
    named = os.environ.get("MIXLIB_WEIGHTS")
    if named:
        return Path(named), f"MIXLIB_WEIGHTS={named!r}"
    return results_folder() / "weights", ("the results folder's weights/ "
                                          "(mixlib.paths.results_folder)")


def weights_folder() -> Path:
    """``MIXLIB_WEIGHTS``, else ``weights/`` in the results folder (``paths.results_folder``:
    ``$MIXLIB_RESULTS``, the checkout mixlib runs from, or a clone of the repository)."""
    return _default_folder()[0]


def trained(name: str, *, folder: str | os.PathLike | None = None) -> torch.nn.Module:
    """Small preset `name` with the sweep's trained weights (float32, eval mode), built at the
    image size its run trained at (the record's ``image_size``: 128 px for the Imagenette
    presets); its record (the preset, the run, its test accuracy, the commit and, where the
    run set one, the image size: absent or None for the preset's own) is the model's
    ``trained_from`` attribute.
    `folder`: where the weights are (default `weights_folder()`)."""
    small.sync_presets()
    if name not in small.PRESETS:  # before looking anywhere (a pip install would fetch)
        raise ValueError(f"name={name!r} is not a small preset; the sweep trains those only: "
                         f"{', '.join(small.PRESETS)}")
    folder, where = ((Path(folder), f"folder={str(folder)!r}") if folder is not None
                     else _default_folder())
    path = folder / f"{name}.pt"
    if not path.is_file():
        if not path.parent.is_dir():
            raise FileNotFoundError(f"no trained weights for name={name!r}: {where} names "
                                    f"{path.parent}, which is not a folder")
        have = sorted(p.stem for p in path.parent.glob("*.pt"))
        raise FileNotFoundError(f"no trained weights for name={name!r} in {path.parent}, "
                                f"{where} (trained so far: {', '.join(have) or 'none'})")
    record = load_checked(path, ValueError, what="trained weights ", map_location="cpu",
                          weights_only=True, remedy="restore it from the repository "
                          "(git checkout -- results/weights) or fetch it again")
    # built at the side it trained at: Imagenette's presets train at 128 px, not the 160 px
    # `build` gives them, and a global filter's weights and a window's shifts follow the map
    size = record.get("image_size")
    model = build(name, **({"image_size": size} if size else {}))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in record.pop("state_dict").items()})
    model.trained_from = record
    return model.eval()
