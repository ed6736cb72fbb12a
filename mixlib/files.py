"""Files written whole or not at all, checked when read back, and what a killed writer leaves.

- ``atomic_write(path, write)``: through a temporary file beside `path`, renamed into place;
  a full disk is a ``DiskFullError`` that names the file.
- ``save_torch(path, obj)``: ``torch.save`` the same way.
- ``state_digest(obj)``: a SHA-256 of what ``torch.load`` gives back (tensors, dicts, lists,
  plain values), so that a file can carry the checksum of its own content.
- ``save_checked(path, content)`` and ``load_checked(path, ...)``: a dict saved with the
  checksum of its content, and read back checked.
- ``remove_stale_parts(folder)``: the temporary files of writers that were killed.
- ``file_digest(path)``: a file's SHA-256 (or another hashlib algorithm).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Callable

import torch

__all__ = ["DiskFullError", "atomic_write", "save_torch", "state_digest", "save_checked",
           "load_checked", "file_digest", "remove_stale_parts", "naming_a_full_disk"]

# the temporary name atomic_write uses: .<name>.<pid>.<8 hex digits>.part
_PART = re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}\.part")


class DiskFullError(OSError):
    """No space was left on the device while a file was written; the file named is untouched
    (a previous version of it, if any, is still whole)."""


@contextlib.contextmanager
def naming_a_full_disk(path: Path):
    """Turn an ENOSPC raised inside into a DiskFullError that names `path`: the bare
    "[Errno 28] No space left on device" names a temporary file, or no file at all."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise DiskFullError(errno.ENOSPC, f"no space left on the device to write {path}; free "
                                          f"some space and run again (the previous {Path(path).name}, "
                                          f"if any, is whole)") from error


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through `write(tmp)` to a temporary file beside `path`, then rename it into place:
    `path` is whole or absent, never half-written (data caches, checkpoints, results). The
    file's bytes reach the disk before the rename and the rename before this returns (fsync of
    both), so a power loss, not only a killed process, leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    # created as open() would create `path` (mode 0o666 less the umask; mkstemp's are owner-only)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        with naming_a_full_disk(path):
            write(tmp)
            _fsync(tmp)
            os.replace(tmp, path)
            _fsync(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's: its entries') data to the disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        if not path.is_dir():  # some systems cannot open or flush a folder: the rename stands
            raise


def save_torch(path: Path, obj) -> None:
    """torch.save(obj) to `path` through atomic_write. torch writes into an open file here:
    given a file name instead, it reports a full disk as "[enforce fail at
    inline_container.cc] unexpected pos", not as the OSError it is."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(path, write)


def state_digest(obj) -> str:
    """SHA-256 of a nest of dicts, lists, tuples, tensors and plain values (str, int, float,
    bool, None): the same for an object and for what torch.save and torch.load make of it, so
    a saved dict can hold the digest of the rest of itself. Tensors count by dtype, shape and
    bytes (not by their memory layout or device)."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        digest.update(f"tensor {t.dtype} {tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        digest.update(f"dict {len(obj)};".encode())
        for key, value in obj.items():
            _feed(digest, key)
            _feed(digest, value)
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{type(obj).__name__} {len(obj)};".encode())
        for value in obj:
            _feed(digest, value)
    else:
        digest.update(f"{type(obj).__name__} {obj!r};".encode())


def save_checked(path: Path, content: dict) -> None:
    """save_torch a dict with one more key, "checksum": the state_digest of the rest."""
    save_torch(path, {**content, "checksum": state_digest(content)})


def load_checked(path: Path, error: type[Exception], *, what: str = "", remedy: str,
                 **load_kwargs) -> dict:
    """The dict save_checked wrote at `path`, without its checksum. A file torch cannot read
    (truncated, empty, garbage: torch's own messages name no file), or whose content does not
    match its checksum (a flipped byte), raises `error` naming `what` and the file, and the
    `remedy`. A dict without a checksum, from before there was one, is returned unchecked."""
    try:
        state = torch.load(path, **load_kwargs)
    except Exception as failure:
        raise error(f"{what}{path} cannot be read ({type(failure).__name__}): it is truncated or "
                    f"damaged; {remedy}") from failure
    if not isinstance(state, dict):
        raise error(f"{what}{path} does not hold what it should; {remedy}")
    expected = state.pop("checksum", None)
    if expected is not None and state_digest(state) != expected:
        raise error(f"{what}{path} is damaged: its content does not match the checksum it was "
                    f"saved with; {remedy}")
    return state


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_stale_parts(folder: Path, *, any_writer: bool = False) -> list[Path]:
    """Remove the temporary files atomic_write left in `folder` when its process was killed
    (SIGKILL, power loss: nothing ran its clean-up): those whose process no longer runs, or
    all of them with `any_writer` (for a caller that holds the folder's lock). Returns them."""
    removed = []
    for tmp in Path(folder).glob(".*.part"):
        match = _PART.fullmatch(tmp.name)
        if match and (any_writer or not _running(int(match.group(1)))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
