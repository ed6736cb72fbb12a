"""CIFAR-10 and Imagenette as uint8 tensors, ready to train on.

    data = load("cifar10", "train")     # data.images: (N, 3, 32, 32) uint8, data.labels: (N,) int64
    x = random_crop_flip(data.images[:256], padding=4)    # batch-wise, on CPU or GPU
    x = normalize(x, data.spec)                            # float, per-channel standardised

Where the images come from, in this order:
1. the JPEG tarballs in a data folder: the ``root`` argument, else ``$MIXLIB_DATA``, else
   ``../shared/data`` beside the checkout when it exists. Each archive is checked against the
   folder's SHA256SUMS before it is read; a missing or corrupt archive is an error that names it.
2. elsewhere, a download (``download=True``, the default when no data folder is found):
   torchvision's CIFAR-10, and fast.ai's published ``imagenette2-160`` archive, centre-cropped
   to 160×160 so that the tensors have the same shapes and labels as the local archives.

The images are decoded once, straight from the archive (a local one is never extracted to disk), into a
tensor file in a cache folder outside the repository (``$MIXLIB_CACHE``, default
``~/.cache/mixlib``); later calls load that file, checked against the checksum it holds (a
damaged one is an error that names it). Every file mixlib writes is written under a temporary name
and renamed when complete, so an interrupted run leaves nothing half-written behind; the
temporary files of a process that was killed are removed by the next call. CIFAR-10's download
is torchvision's, which writes in place: it runs under a lock, one process at a time, and
torchvision checks its MD5 before extracting (it has no timeout). A downloaded
Imagenette archive is checked against the MD5 published with it.

``MIXLIB_QUICK=1`` (or ``quick=True``) keeps the first few images of every class: a subset of a
few hundred images for CI and for trying a notebook on a laptop.
"""
from __future__ import annotations

import fcntl
import io
import os
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .files import atomic_write, file_digest, load_checked, remove_stale_parts, save_checked
from .layers import check_int
from .paths import cache_root

__all__ = [
    "DatasetSpec",
    "ImageData",
    "DATASETS",
    "load",
    "data_root",
    "cache_root",
    "quick_mode",
    "random_crop_flip",
    "cutout",
    "normalize",
    "iterate_batches",
    "atomic_write",
    "DataError",
]

QUICK_PER_CLASS = {"train": 40, "test": 20}  # 400 training and 200 test images


class DataError(ValueError):
    """An archive is corrupt, has the wrong content, or a split is unknown."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a data set is: where its archives lie, its classes in label order, its sizes."""

    name: str
    folder: str  # the folder under the data root
    archives: dict[str, str]  # split -> archive file name
    classes: tuple[str, ...]  # folder names, in label order (alphabetical, like ImageFolder)
    class_names: tuple[str, ...]  # what a reader calls them
    image_size: int
    sizes: dict[str, int]  # split -> number of images
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR10 = DatasetSpec(
    name="cifar10",
    folder="cifar10-jpg",
    archives={"train": "train.tar.gz", "test": "test.tar.gz"},
    classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"),
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"),
    image_size=32,
    sizes={"train": 50_000, "test": 10_000},
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)

IMAGENETTE = DatasetSpec(
    name="imagenette",
    folder="imagenette-160",
    archives={"train": "train.tar.gz", "test": "val.tar.gz"},  # the published val split
    classes=("n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916",
             "n03417042", "n03425413", "n03445777", "n03888257"),
    class_names=("tench", "English springer", "cassette player", "chain saw", "church",
                 "French horn", "garbage truck", "gas pump", "golf ball", "parachute"),
    image_size=160,
    sizes={"train": 9_469, "test": 3_925},
    mean=(0.485, 0.456, 0.406),  # ImageNet statistics
    std=(0.229, 0.224, 0.225),
)

DATASETS = {spec.name: spec for spec in (CIFAR10, IMAGENETTE)}

IMAGENETTE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
IMAGENETTE_MD5 = "e793b78cc4c9e9a4ccc0c1155377a412"  # published with it (torchvision's Imagenette)
DOWNLOAD_TIMEOUT_S = 60  # for each connection and read: a stalled download fails instead of hanging


@dataclass
class ImageData:
    """A split in memory: images (N, 3, H, W) uint8 and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    spec: DatasetSpec
    split: str

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> "ImageData":
        return ImageData(self.images.to(device), self.labels.to(device), self.spec, self.split)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.spec.classes)).tolist()

    def balanced_head(self, n: int) -> "ImageData":
        """The first `n` images taken class by class in turn, in their stored order.

        The archives are sorted by class, so a plain ``images[:n]`` would hold only the first
        few classes; this keeps the classes as balanced as `n` allows, the same for every run.
        """
        if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(self):
            raise ValueError(f"n must be an int in [1, {len(self)}], got {n!r}")
        labels = self.labels.cpu()
        # rank of each image within its class (0 for a class's first image, 1 for its second...)
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(labels)
        rank[order] = torch.arange(len(labels)) - starts[labels[order]]
        # take rank 0 of every class, then rank 1, ...; ties in stored order
        chosen = torch.argsort(rank * len(labels) + torch.arange(len(labels)))[:n]
        chosen = chosen.sort().values.to(self.labels.device)
        return ImageData(self.images[chosen], self.labels[chosen], self.spec, self.split)

    def sample(self, n: int, *, seed: int) -> "ImageData":
        """`n` images drawn at random without replacement, in the drawn order (a shuffled
        subset: unlike ``balanced_head``, every batch of it mixes the classes), the same for a
        given `seed`."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(self):
            raise ValueError(f"n must be an int in [1, {len(self)}], got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        drawn = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        drawn = drawn.to(self.labels.device)
        return ImageData(self.images[drawn], self.labels[drawn], self.spec, self.split)


# ----------------------------------------------------------------------------------------------
# Where things are


def quick_mode() -> bool:
    """True when MIXLIB_QUICK=1: every workload shrinks (CI only). 0 or unset: off; any other
    value is an error ("false" used to mean quick, as every value but 0 did)."""
    value = os.environ.get("MIXLIB_QUICK", "0")
    if value not in ("", "0", "1"):
        raise ValueError(f"MIXLIB_QUICK must be 1 or 0 (or unset), got {value!r}")
    return value == "1"


def data_root(root: str | os.PathLike | None = None) -> Path | None:
    """The folder holding ``cifar10-jpg/`` and ``imagenette-160/``, or None (then download)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("MIXLIB_DATA"):
        return Path(os.environ["MIXLIB_DATA"]).expanduser()
    beside_checkout = Path(__file__).resolve().parents[2] / "shared" / "data"
    return beside_checkout if beside_checkout.is_dir() else None


def sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def _expected_sha256(archive: Path) -> str:
    sums = archive.parent / "SHA256SUMS"
    if not sums.is_file():
        raise DataError(f"no SHA256SUMS beside {archive}: cannot verify it")
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == archive.name:
            return parts[0].lower()
    raise DataError(f"{sums} has no checksum for {archive.name}")


# ----------------------------------------------------------------------------------------------
# Decoding an archive, once


def _decode_archive(archive: Path, label_of: Callable[[str], int | None], image_size: int,
                    per_class: int | None, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every image member of a tar archive whose path `label_of` maps to a label.

    Images are converted to RGB, centre-cropped to a square and resized to `image_size` if they
    are not already that size. With `per_class`, only the first `per_class` images of each
    class are kept, first in the archive's member order (by path in the book's tarballs). Returns (N, 3, S, S) uint8 and (N,) int64, in path order.
    """
    found: list[tuple[str, int, np.ndarray]] = []
    taken = [0] * num_classes
    member = None
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                label = label_of(member.name)
                if label is None:
                    continue
                if per_class is not None and taken[label] >= per_class:
                    continue  # "first" in the archive's order (the book's tarballs: by path)
                taken[label] += 1
                with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                    found.append((member.name, label, _to_square(image, image_size)))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:  # PIL's errors are OSErrors
        where = f" at {member.name!r}" if member is not None else ""
        raise DataError(f"{archive} cannot be read{where} ({type(error).__name__}: {error}): it is "
                        f"truncated or damaged; copy or download it again") from error
    if not found:
        raise DataError(f"{archive} holds no images of the expected layout")
    found.sort(key=lambda item: item[0])
    images = torch.from_numpy(np.stack([a for _, _, a in found])).permute(0, 3, 1, 2)  # NHWC->NCHW
    labels = torch.tensor([label for _, label, _ in found], dtype=torch.int64)
    return images.contiguous(), labels


def _to_square(image: Image.Image, size: int) -> np.ndarray:
    """RGB, (size, size, 3) uint8: a centre crop to a square, then a resize when needed."""
    image = image.convert("RGB")
    w, h = image.size
    if (w, h) != (size, size):
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side))
        if side != size:
            image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _folder_labeller(spec: DatasetSpec, prefix: str) -> Callable[[str], int | None]:
    """Map 'prefix/<class folder>/<file>' to the class index; other paths to None."""
    index = {name: i for i, name in enumerate(spec.classes)}

    def label_of(path: str) -> int | None:
        parts = path.split("/")
        if len(parts) < 3 or "/".join(parts[:-2]) != prefix:
            return None
        if parts[-2] not in index:
            raise DataError(f"unknown class folder {parts[-2]!r} in {path!r}; "
                            f"expected one of {spec.classes}")
        return index[parts[-2]]

    return label_of


# ----------------------------------------------------------------------------------------------
# Loading


def load(name: str, split: str = "train", *, root: str | os.PathLike | None = None,
         cache_dir: str | os.PathLike | None = None, download: bool | None = None,
         quick: bool | None = None) -> ImageData:
    """A split of a data set as tensors.

    Args:
        name: "cifar10" or "imagenette".
        split: "train" or "test" (Imagenette's test split is its published val split).
        root: the data folder holding ``<spec.folder>/`` with its tarballs and SHA256SUMS;
            default ``$MIXLIB_DATA``, else ``../shared/data`` beside the checkout.
        cache_dir: where decoded tensors are kept; default ``$MIXLIB_CACHE`` or ~/.cache/mixlib.
        download: fetch the data from the internet. Default: only when no data folder exists.
        quick: keep a few images per class; default from ``MIXLIB_QUICK``.
    """
    if name not in DATASETS:
        raise DataError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    spec = DATASETS[name]
    if split not in spec.archives:
        raise DataError(f"split must be one of {sorted(spec.archives)}, got {split!r}")
    quick = quick_mode() if quick is None else quick
    per_class = QUICK_PER_CLASS[split] if quick else None
    folder = data_root(root)
    if download is None:
        download = folder is None
    cache = cache_root(cache_dir)
    if folder is not None and not download:
        return _load_local(spec, split, folder / spec.folder, cache, per_class)
    return _load_download(spec, split, cache, per_class)


def _cached(path: Path, spec: DatasetSpec, split: str,
            decode: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> ImageData:
    if path.parent.is_dir():
        remove_stale_parts(path.parent)  # a decode killed while it wrote (up to 154 MB)
    if not path.is_file():
        images, labels = decode()
        save_checked(path, {"images": images, "labels": labels, "classes": list(spec.classes)})
    saved = _read_cache(path)
    if tuple(saved["classes"]) != spec.classes:
        raise DataError(f"cache file {path} has classes {saved['classes']}, expected {spec.classes}")
    return ImageData(saved["images"], saved["labels"], spec, split)


def _read_cache(path: Path) -> dict:
    """The decoded tensors of a cache file, checked against the checksum they were saved with
    (caches from before it are read unchecked); a damaged file is a DataError naming it."""
    remedy = "delete it, and the next call decodes the archive again"
    saved = load_checked(path, DataError, what="cache file ", remedy=remedy, weights_only=True)
    if not {"images", "labels", "classes"} <= set(saved):
        raise DataError(f"cache file {path} does not hold decoded images; {remedy}")
    return saved


def _load_local(spec: DatasetSpec, split: str, folder: Path, cache: Path,
                per_class: int | None) -> ImageData:
    archive = folder / spec.archives[split]
    if not archive.is_file():
        raise FileNotFoundError(
            f"{spec.name} {split} archive not found: {archive}. Point MIXLIB_DATA (or root=) at "
            f"the folder holding {spec.folder}/, or pass download=True.")
    expected = _expected_sha256(archive)
    suffix = f"-quick{per_class}" if per_class else ""
    path = cache / f"{spec.name}-{split}-{expected[:16]}{suffix}.pt"

    def decode():
        actual = sha256(archive)
        if actual != expected:
            raise DataError(f"{archive} is corrupt: its sha256 is {actual}, SHA256SUMS says "
                            f"{expected}. Copy the archive again.")
        split_folder = archive.name.split(".")[0]  # "train", "test" or "val"
        images, labels = _decode_archive(archive, _folder_labeller(spec, f"{spec.name}/{split_folder}"),
                                         spec.image_size, per_class, len(spec.classes))
        _check_counts(spec, split, labels, per_class, archive)
        return images, labels

    return _cached(path, spec, split, decode)


def _check_counts(spec: DatasetSpec, split: str, labels: torch.Tensor, per_class: int | None,
                  source) -> None:
    if per_class is None and len(labels) != spec.sizes[split]:
        raise DataError(f"{source} holds {len(labels)} {split} images, expected {spec.sizes[split]}")


def _load_download(spec: DatasetSpec, split: str, cache: Path, per_class: int | None) -> ImageData:
    suffix = f"-quick{per_class}" if per_class else ""
    path = cache / f"{spec.name}-{split}-download{suffix}.pt"
    downloads = cache / "downloads"
    if spec.name == "cifar10":
        return _cached(path, spec, split, lambda: _download_cifar10(split, downloads, per_class))

    def decode():
        archive = downloads / Path(IMAGENETTE_URL).name
        if downloads.is_dir():
            remove_stale_parts(downloads)  # a download that was killed
        if not archive.is_file():
            atomic_write(archive, lambda tmp: _fetch(IMAGENETTE_URL, tmp, md5=IMAGENETTE_MD5))
        _check_md5(archive, IMAGENETTE_MD5)  # also a copy put there by hand
        split_folder = {"train": "train", "test": "val"}[split]
        images, labels = _decode_archive(
            archive, _folder_labeller(spec, f"imagenette2-160/{split_folder}"), spec.image_size,
            per_class, len(spec.classes))
        _check_counts(spec, split, labels, per_class, archive)
        return images, labels

    return _cached(path, spec, split, decode)


def _fetch(url: str, destination: Path, *, md5: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                open(destination, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise DataError(f"downloading {url} failed ({error}); try again, or point MIXLIB_DATA "
                        f"at a folder holding the archives") from error
    _check_md5(destination, md5, url)


def _check_md5(archive: Path, md5: str, source: str | None = None) -> None:
    actual = file_digest(archive, "md5")
    if actual != md5:
        raise DataError(f"{source or archive} is corrupt: its md5 is {actual}, the published one "
                        f"is {md5}" + ("" if source else "; delete it to download it again"))


def _download_cifar10(split: str, downloads: Path, per_class: int | None):
    try:
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("downloading CIFAR-10 needs torchvision: pip install torchvision") from error
    downloads.mkdir(parents=True, exist_ok=True)
    # torchvision writes and extracts its archive in place: one process at a time (two ranks of
    # torchrun would truncate each other's download); the kernel drops the lock of a killed one,
    # and torchvision checks the archive's MD5 before it extracts
    with open(downloads / ".cifar10.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        raw = TorchvisionCIFAR10(str(downloads), train=(split == "train"), download=True)
    images = torch.from_numpy(raw.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    labels = torch.tensor(raw.targets, dtype=torch.int64)
    if per_class is not None:
        keep = torch.cat([torch.nonzero(labels == c)[:per_class, 0] for c in range(10)]).sort().values
        images, labels = images[keep], labels[keep]
    return images, labels


# ----------------------------------------------------------------------------------------------
# Augmentation and normalisation on whole batches (any device)


def random_crop_flip(images: torch.Tensor, *, padding: int = 4, flip: bool = True,
                     padding_mode: str = "reflect",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """A random translation by up to `padding` pixels and a random horizontal flip, per image.

    Args:
        images: (N, C, H, W), any dtype, on any device.
        padding: the largest shift, in pixels; 0 turns the crop off.
        flip: flip each image left-right with probability 1/2.
        padding_mode: "reflect" or "constant" (zeros) for the pixels shifted in.
        generator: a torch.Generator on the images' device, for reproducible draws.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    N, C, H, W = images.shape
    device = images.device
    out = images
    if padding:
        source = images if images.is_floating_point() else images.float()
        padded = F.pad(source, (padding,) * 4, mode=padding_mode).to(images.dtype)
        top = torch.randint(0, 2 * padding + 1, (N, 1), device=device, generator=generator)
        left = torch.randint(0, 2 * padding + 1, (N, 1), device=device, generator=generator)
        rows = top + torch.arange(H, device=device)  # (N, H): the rows each crop reads
        cols = left + torch.arange(W, device=device)  # (N, W)
        n = torch.arange(N, device=device)[:, None, None]
        # advanced indices around a slice put their axes first: (N, H, W, C) -> (N, C, H, W)
        out = padded[n, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    if flip:
        flipped = torch.rand(N, device=device, generator=generator) < 0.5
        out = torch.where(flipped[:, None, None, None], out.flip(3), out)
    return out


def cutout(images: torch.Tensor, *, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cutout (DeVries & Taylor, 2017): a `size` × `size` square of every image set to zero.

    The square's centre is drawn uniformly over the image, so near a border part of the square
    falls outside it and less is cut, as in the paper. Applied to normalised images, zero is the
    data set's mean colour.

    Args:
        images: (N, C, H, W), on any device.
        size: the square's side in pixels, at most the image's shorter side; 0 returns
            `images` unchanged (and draws nothing).
        generator: a torch.Generator on the images' device, for reproducible draws.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if check_int("size", size, minimum=0) == 0:
        return images
    N, _, H, W = images.shape
    if size > min(H, W):  # no use for a square larger than the image: most likely a typo
        raise ValueError(f"size must be at most the images' side, got size={size} for {H}×{W} images")
    device = images.device
    # the square's first row and column (may be negative: the square then starts outside)
    top = torch.randint(0, H, (N, 1), device=device, generator=generator) - size // 2
    left = torch.randint(0, W, (N, 1), device=device, generator=generator) - size // 2
    rows = torch.arange(H, device=device) - top  # (N, H): 0 .. size-1 inside the square
    cols = torch.arange(W, device=device) - left  # (N, W)
    inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None, :]
    return images.masked_fill(inside[:, None], 0)  # (N, H, W) -> (N, 1, H, W): every channel


def normalize(images: torch.Tensor, spec: DatasetSpec, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float, standardised with the data set's channel mean and std.

    Only uint8: a float image may already be scaled to [0, 1] or standardised, and dividing it
    by 255 again would pass silently."""
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (0-255), got dtype {images.dtype}")
    mean = torch.tensor(spec.mean, device=images.device, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=images.device, dtype=dtype).view(1, 3, 1, 1)
    return (images.to(dtype) / 255 - mean) / std


def iterate_batches(data: ImageData, batch_size: int, *, shuffle: bool = False,
                    generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches of a split held in memory; the last batch may be smaller."""
    check_int("batch_size", batch_size)
    order = (torch.randperm(len(data), generator=generator, device=data.labels.device) if shuffle
             else torch.arange(len(data), device=data.labels.device))
    for start in range(0, len(data), batch_size):
        index = order[start:start + batch_size]
        yield data.images[index], data.labels[index]
