"""Where mixlib keeps what is not in the package: its cache, and the results committed with it.

- ``cache_root(cache_dir=None)``: the cache of decoded datasets, downloads and checkpoints
  (`cache_dir`, else ``$MIXLIB_CACHE``, else ``$XDG_CACHE_HOME/mixlib`` or ``~/.cache/mixlib``).
- ``results_folder(fetch=True)``: the repository's ``results/`` (runs, benchmarks, trained
  weights), cloned into the cache for a mixlib installed without it.

Low in the import graph (beside ``files``), so that the models can find their trained weights
the same way the chapters find the results.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["REPOSITORY", "cache_root", "results_folder"]

REPOSITORY = "https://github.com/mixlib/token-mixers"  # where a pip-installed mixlib finds them


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mixlib"
    return Path(os.environ.get("MIXLIB_CACHE", default)).expanduser()


def results_folder(*, fetch: bool = True) -> Path:
    """The ``results/`` folder committed with the code: ``$MIXLIB_RESULTS`` if set, else the one
    beside this mixlib (a clone of the repository), else, for a pip-installed mixlib (Colab), a
    shallow clone of the repository in the cache (``fetch=False``: an error instead). Every
    chapter that reads results or trained weights finds them through this one function."""
    if os.environ.get("MIXLIB_RESULTS"):
        return Path(os.environ["MIXLIB_RESULTS"]).expanduser()
    beside = Path(__file__).resolve().parents[1] / "results"
    if beside.is_dir():
        return beside
    clone = cache_root() / "token-mixers"
    if not (clone / "results").is_dir():
        if not fetch:
            raise FileNotFoundError(f"no results folder beside {Path(__file__).parent} and "
                                    f"fetch=False; set MIXLIB_RESULTS or clone {REPOSITORY}")
        _clone(clone)
    return clone / "results"


def _clone(clone: Path) -> None:
    """A shallow clone of the repository at `clone`, whole or not at all: cloned beside it
    under a temporary name and renamed into place, so an interrupted clone is not mistaken
    for one (a clone left by an older mixlib without results/ is replaced)."""
    clone.parent.mkdir(parents=True, exist_ok=True)
    part = clone.with_name(f".{clone.name}.{os.getpid()}.part")
    shutil.rmtree(part, ignore_errors=True)
    try:
        subprocess.run(["git", "clone", "-q", "--depth", "1", REPOSITORY, str(part)],
                       check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as error:
        shutil.rmtree(part, ignore_errors=True)
        said = getattr(error, "stderr", None) or error
        raise FileNotFoundError(f"no results folder beside {Path(__file__).parent}, and cloning "
                                f"{REPOSITORY} into {clone} failed ({str(said).strip()}); set "
                                f"MIXLIB_RESULTS to a checkout's results/") from error
    shutil.rmtree(clone, ignore_errors=True)
    os.replace(part, clone)
