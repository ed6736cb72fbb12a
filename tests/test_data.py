"""mixlib.data: real archives decode to the sizes and class order their READMEs give; bad
archives fail loudly and leave nothing behind; augmentation is a true crop and flip."""
import io
import os
import shutil
import stat
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from mixlib import data as mdata
from mixlib.data import CIFAR10, IMAGENETTE, DataError, cutout, load, random_crop_flip
from mixlib.files import file_digest

ROOT = mdata.data_root()
needs_data = pytest.mark.skipif(ROOT is None or not (ROOT / "cifar10-jpg").is_dir(),
                                reason="no data folder (MIXLIB_DATA or ../shared/data)")

# From the data folders' READMEs: per-class counts and label order.
README_COUNTS = {
    ("cifar10", "train"): [5000] * 10,
    ("cifar10", "test"): [1000] * 10,
    ("imagenette", "train"): [963, 955, 993, 858, 941, 956, 961, 931, 951, 960],
    ("imagenette", "test"): [387, 395, 357, 386, 409, 394, 389, 419, 399, 390],
}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@needs_data
@pytest.mark.parametrize("name,split", list(README_COUNTS))
def test_split_sizes_and_class_order(name, split, shared_cache):
    d = load(name, split, cache_dir=shared_cache, quick=False)
    spec = mdata.DATASETS[name]
    size = spec.image_size
    assert d.images.shape == (spec.sizes[split], 3, size, size)
    assert d.images.dtype == torch.uint8 and d.labels.dtype == torch.int64
    assert d.class_counts() == README_COUNTS[(name, split)]
    # a real photo, not a blank: pixel values spread over the range
    assert d.images[:100].float().std() > 30


@needs_data
def test_class_order_is_alphabetical_folders():
    assert list(CIFAR10.classes) == sorted(CIFAR10.classes)
    assert CIFAR10.classes[0] == "airplane" and CIFAR10.classes[9] == "truck"
    assert list(IMAGENETTE.classes) == sorted(IMAGENETTE.classes)
    assert IMAGENETTE.class_names[0] == "tench" and IMAGENETTE.class_names[9] == "parachute"


@needs_data
def test_labels_follow_the_class_folders(tmp_path):
    """A CIFAR test image of class 3 ('cat') decodes to the pixels of cifar10/test/cat/0000.jpg."""
    d = load("cifar10", "test", cache_dir=tmp_path, quick=True)
    with tarfile.open(ROOT / "cifar10-jpg" / "test.tar.gz") as tar:
        raw = tar.extractfile("cifar10/test/cat/0000.jpg").read()
    expected = torch.from_numpy(np.array(Image.open(io.BytesIO(raw)).convert("RGB"))).permute(2, 0, 1)
    first_cat = int(torch.nonzero(d.labels == 3)[0])
    assert torch.equal(d.images[first_cat], expected)


@needs_data
def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    first = load("cifar10", "test", cache_dir=tmp_path, quick=True)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1
    monkeypatch.setattr(mdata, "_decode_archive", lambda *a, **k: pytest.fail("decoded twice"))
    again = load("cifar10", "test", cache_dir=tmp_path, quick=True)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)


@needs_data
def test_quick_subset_has_every_class(tmp_path):
    d = load("imagenette", "train", cache_dir=tmp_path, quick=True)
    assert 200 <= len(d) <= 1000
    assert d.class_counts() == [mdata.QUICK_PER_CLASS["train"]] * 10


@needs_data
def test_quick_mode_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXLIB_QUICK", "1")
    assert len(load("cifar10", "test", cache_dir=tmp_path)) == 10 * mdata.QUICK_PER_CLASS["test"]


def test_quick_mode_is_1_or_0_and_nothing_else(monkeypatch):
    for value, quick in (("1", True), ("0", False), ("", False)):
        monkeypatch.setenv("MIXLIB_QUICK", value)
        assert mdata.quick_mode() is quick
    monkeypatch.delenv("MIXLIB_QUICK")
    assert mdata.quick_mode() is False
    for value in ("false", "true", "yes"):  # "false" used to turn it on, as all but "0" did
        monkeypatch.setenv("MIXLIB_QUICK", value)
        with pytest.raises(ValueError, match=f"MIXLIB_QUICK must be 1 or 0 \\(or unset\\), got '{value}'"):
            mdata.quick_mode()


@needs_data
def test_corrupt_archive_is_an_error_and_leaves_nothing(tmp_path):
    folder = tmp_path / "data" / "cifar10-jpg"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "cifar10-jpg" / "SHA256SUMS", folder)
    original = (ROOT / "cifar10-jpg" / "test.tar.gz").read_bytes()
    corrupt = bytearray(original)
    corrupt[len(corrupt) // 2] ^= 0xFF
    (folder / "test.tar.gz").write_bytes(bytes(corrupt))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="corrupt"):
        load("cifar10", "test", root=tmp_path / "data", cache_dir=cache, quick=True)
    assert not cache.exists() or not any(cache.iterdir())


def test_missing_archive_names_the_path(tmp_path):
    (tmp_path / "cifar10-jpg").mkdir()
    with pytest.raises(FileNotFoundError, match="test.tar.gz"):
        load("cifar10", "test", root=tmp_path, cache_dir=tmp_path / "cache")


def test_interrupted_decode_leaves_no_cache_file(tmp_path, monkeypatch):
    """A failure while the tensor file is written leaves neither it nor a temporary file."""
    images, labels = torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64)

    def broken_save(obj, f):
        f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    target = tmp_path / "x.pt"
    with pytest.raises(KeyboardInterrupt):
        mdata._cached(target, CIFAR10, "test", lambda: (images, labels))
    assert list(tmp_path.iterdir()) == []


def test_bad_name_and_split():
    with pytest.raises(DataError, match="'mnist'"):
        load("mnist")
    with pytest.raises(DataError, match="'val'"):
        load("cifar10", "val")


def _fake_imagenette(path, per_class=2):
    """A tiny archive in the layout of fast.ai's imagenette2-160.tgz: non-square JPEGs."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "val"):
            for wnid in IMAGENETTE.classes:
                for i in range(per_class):
                    array = rng.integers(0, 255, (160, 213, 3), dtype=np.uint8)
                    buffer = io.BytesIO()
                    Image.fromarray(array).save(buffer, format="JPEG")
                    info = tarfile.TarInfo(f"imagenette2-160/{split}/{wnid}/{i:04d}.JPEG")
                    info.size = buffer.tell()
                    buffer.seek(0)
                    tar.addfile(info, buffer)


def test_imagenette_download_path_gives_the_same_shapes(tmp_path, monkeypatch):
    """The download path (here from a local file URL) decodes to (N, 3, 160, 160), same labels."""
    archive = tmp_path / "imagenette2-160.tgz"
    _fake_imagenette(archive)
    monkeypatch.setattr(mdata, "IMAGENETTE_URL", archive.as_uri())
    monkeypatch.setattr(mdata, "IMAGENETTE_MD5", file_digest(archive, "md5"))
    monkeypatch.setattr(mdata, "_check_counts", lambda *a: None)  # the fake has 2 per class
    d = load("imagenette", "test", cache_dir=tmp_path / "cache", download=True, quick=False)
    assert d.images.shape == (20, 3, 160, 160)
    assert d.class_counts() == [2] * 10
    assert (tmp_path / "cache" / "downloads" / "imagenette2-160.tgz").is_file()


def test_random_crop_flip_is_a_translation_and_a_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    out = random_crop_flip(x, padding=2, generator=g)
    assert out.shape == x.shape
    for n in range(2):
        windows = [padded[n, :, r:r + 8, c:c + 8] for r in range(5) for c in range(5)]
        candidates = windows + [w.flip(2) for w in windows]
        assert any(torch.equal(out[n], w) for w in candidates)


def test_random_crop_flip_moves_and_flips_about_half():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 255, (400, 3, 16, 16), dtype=torch.uint8)
    out = random_crop_flip(x, padding=0, generator=g)
    assert out.dtype == torch.uint8
    flipped = sum(torch.equal(out[n], x[n].flip(2)) for n in range(400))
    assert 150 < flipped < 250
    moved = random_crop_flip(x, padding=4, flip=False, generator=g)
    unchanged = sum(torch.equal(moved[n], x[n]) for n in range(400))
    assert unchanged < 40  # only the (0, 0) shift of 81 keeps the image
    same_seed = [random_crop_flip(x, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(*same_seed)


def test_cutout_zeroes_one_square_clipped_at_the_borders():
    x = torch.ones(500, 2, 12, 12)
    out = cutout(x, size=4, generator=torch.Generator().manual_seed(0))
    holes = out[:, 0] == 0  # (N, H, W)
    assert torch.equal(holes, out[:, 1] == 0)  # the same square in every channel
    assert torch.equal(out[~holes[:, None].expand_as(out)], x[~holes[:, None].expand_as(x)])
    for hole in holes:  # one axis-aligned rectangle, at most 4 x 4, at least 2 x 2
        rows, cols = hole.any(1).nonzero()[:, 0], hole.any(0).nonzero()[:, 0]
        assert hole.sum() == len(rows) * len(cols)
        assert len(rows) == rows[-1] - rows[0] + 1 and len(cols) == cols[-1] - cols[0] + 1
        assert 2 <= len(rows) <= 4 and 2 <= len(cols) <= 4
    area = holes.sum((1, 2))
    assert (area == 16).float().mean() > 0.5  # the square lies inside for centres 2..10 of 12
    # centred on the drawn row c (rows c-2 .. c+1): a hole touching the top has 2, 3 or 4 rows
    # (c = 0, 1, 2), one touching the bottom 3 or 4 (c = 11, 10); anchored at c it would be 4
    # at the top and 1 to 4 at the bottom
    rows_cut = holes.any(2)  # (N, H)
    top, bottom = rows_cut[:, 0], rows_cut[:, -1]
    assert set(rows_cut[top].sum(1).tolist()) == {2, 3, 4}
    assert set(rows_cut[bottom].sum(1).tolist()) == {3, 4}
    same = [cutout(x, size=4, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*same)


def test_cutout_of_size_zero_draws_nothing_and_bad_sizes_are_named():
    x = torch.randn(4, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    before = g.get_state()
    assert cutout(x, size=0, generator=g) is x and torch.equal(g.get_state(), before)
    for size in (-1, 2.0, True):
        with pytest.raises(ValueError, match="size"):
            cutout(x, size=size)
    with pytest.raises(ValueError, match="images"):
        cutout(x[0], size=2)
    assert (cutout(x, size=8) == 0).any()  # the image's side is allowed
    with pytest.raises(ValueError, match=r"size=9 for 8×8"):
        cutout(x, size=9)


def test_normalize_standardises():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    y = mdata.normalize(x, CIFAR10)
    expected = (1 - torch.tensor(CIFAR10.mean)) / torch.tensor(CIFAR10.std)
    assert torch.allclose(y[0, :, 0, 0], expected)


def test_normalize_refuses_an_image_that_is_already_float():
    with pytest.raises(ValueError, match="images must be uint8.*float32"):
        mdata.normalize(torch.full((1, 3, 2, 2), 0.5), CIFAR10)


def test_iterate_batches_covers_the_split_and_names_a_bad_batch_size():
    split = mdata.ImageData(torch.zeros(5, 3, 2, 2, dtype=torch.uint8), torch.arange(5), CIFAR10, "test")
    sizes = [len(labels) for _, labels in mdata.iterate_batches(split, 2)]
    assert sizes == [2, 2, 1]
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="batch_size"):
            next(mdata.iterate_batches(split, bad))


def test_balanced_head_takes_every_class_in_turn():
    spec = mdata.DATASETS["cifar10"]
    labels = torch.arange(10).repeat_interleave(20)  # sorted by class, as the archives are
    images = torch.arange(200, dtype=torch.uint8).view(200, 1, 1, 1).expand(200, 3, 2, 2)
    data = mdata.ImageData(images, labels, spec, "train")
    head = data.balanced_head(25)
    assert head.class_counts() == [3] * 5 + [2] * 5
    # the first images of each class, in stored order
    assert head.images[:, 0, 0, 0].tolist() == sorted(
        [20 * c + r for c in range(10) for r in range(2)] + [20 * c + 2 for c in range(5)])
    assert data.balanced_head(200).labels.tolist() == labels.tolist()
    with pytest.raises(ValueError, match="n must be"):
        data.balanced_head(0)
    with pytest.raises(ValueError, match="n must be"):
        data.balanced_head(201)


def test_sample_draws_a_shuffled_subset_fixed_by_its_seed():
    spec = mdata.DATASETS["cifar10"]
    labels = torch.arange(10).repeat_interleave(20)  # sorted by class, as the archives are
    images = torch.arange(200, dtype=torch.uint8).view(200, 1, 1, 1).expand(200, 3, 2, 2)
    data = mdata.ImageData(images, labels, spec, "test")
    drawn = data.sample(50, seed=3)
    index = drawn.images[:, 0, 0, 0].long()
    assert len(set(index.tolist())) == 50  # without replacement
    assert torch.equal(drawn.labels, labels[index])  # images and labels drawn together
    assert len(set(drawn.labels[:10].tolist())) > 1  # shuffled: a first batch is not one class
    assert torch.equal(data.sample(50, seed=3).images, drawn.images)
    assert not torch.equal(data.sample(50, seed=4).images, drawn.images)
    for bad in (0, 201, 2.0, True):
        with pytest.raises(ValueError, match="n must be"):
            data.sample(bad, seed=0)
    with pytest.raises(ValueError, match="seed must be"):
        data.sample(5, seed=None)


def test_atomic_write_leaves_the_file_whole_or_absent_with_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "result.json"
    mdata.atomic_write(target, lambda tmp: tmp.write_text("{}"))
    assert target.read_text() == "{}"
    mask = os.umask(0o022)  # a usual umask; the file must be readable by others, as open() makes it
    try:
        mdata.atomic_write(target, lambda tmp: tmp.write_text("[1]"))
    finally:
        os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644

    def fails(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        mdata.atomic_write(target, fails)
    assert target.read_text() == "[1]" and list(target.parent.iterdir()) == [target]


def _cache_of(tmp_path):
    """A small decoded cache file written by _cached, and a loader that reads it again."""
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    labels = torch.tensor([0, 1])
    path = tmp_path / "cache" / "x.pt"
    mdata._cached(path, CIFAR10, "test", lambda: (images, labels))
    return path, lambda: mdata._cached(path, CIFAR10, "test", lambda: pytest.fail("decoded again"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names open files via /proc")
def test_atomic_write_flushes_the_file_before_the_rename_and_the_folder_after(tmp_path,
                                                                             monkeypatch):
    # a power loss after an unflushed rename can leave an empty file under the final name
    from mixlib import files
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(
        f"/proc/self/fd/{fd}"))), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))),
                                                     real_replace(a, b)))
    target = tmp_path / "result.json"
    files.atomic_write(target, lambda tmp: tmp.write_text("{}"))
    assert [kind for kind, _ in events] == ["fsync", "replace", "fsync"]
    assert events[0][1].endswith(".part") and events[2][1] == str(tmp_path)
    assert target.read_text() == "{}"


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_an_unreadable_cache_is_an_error_that_names_it(tmp_path, damage):
    path, again = _cache_of(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[:len(data) // 2], "empty": b"", "garbage": b"x" * 500}[damage])
    with pytest.raises(DataError, match=f"cache file {path} cannot be read.*delete it"):
        again()


def test_a_flipped_byte_in_a_cache_is_found_by_its_checksum(tmp_path):
    path, again = _cache_of(tmp_path)
    assert torch.equal(again().labels, torch.tensor([0, 1]))
    data = bytearray(path.read_bytes())
    pixels = bytes(range(16, 32))  # image 0, channel 1: stored as they are in the file
    data[data.index(pixels) + 5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=f"cache file {path} is damaged: .* checksum"):
        again()


def test_a_cache_from_before_the_checksum_is_read_unchecked(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"images": torch.zeros(1, 3, 2, 2, dtype=torch.uint8), "labels": torch.tensor([4]),
                "classes": list(CIFAR10.classes)}, path)
    assert mdata._cached(path, CIFAR10, "test", lambda: pytest.fail("decoded")).labels.tolist() == [4]


def test_the_temporary_file_of_a_killed_cache_write_is_removed(tmp_path):
    dead = 2 ** 22 + 1  # above the default pid_max of 2^22: no process has it
    (tmp_path / "cache").mkdir()
    stale = tmp_path / "cache" / f".x.pt.{dead}.0123abcd.part"
    live = tmp_path / "cache" / f".y.pt.{os.getpid()}.0123abcd.part"  # a writer still at work
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    _cache_of(tmp_path)
    assert not stale.exists() and live.exists()


def _truncated_archive(tmp_path):
    folder = tmp_path / "data" / "cifar10-jpg"
    folder.mkdir(parents=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i in range(20):
            array = np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)
            image = io.BytesIO()
            Image.fromarray(array).save(image, format="PNG")  # incompressible enough to truncate
            info = tarfile.TarInfo(f"cifar10/test/cat/{i:04d}.png")
            info.size = image.tell()
            image.seek(0)
            tar.addfile(info, image)
    archive = folder / "test.tar.gz"
    archive.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    # a SHA256SUMS made again for the truncated file: the checksum cannot catch it
    (folder / "SHA256SUMS").write_text(f"{file_digest(archive)}  test.tar.gz\n")
    return archive


def test_a_truncated_archive_with_a_matching_checksum_is_an_error_naming_it(tmp_path):
    archive = _truncated_archive(tmp_path)
    with pytest.raises(DataError, match=f"{archive} cannot be read .*truncated or damaged"):
        load("cifar10", "test", root=tmp_path / "data", cache_dir=tmp_path / "cache", quick=True)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_downloaded_archive_is_checked_against_its_published_md5(tmp_path, monkeypatch):
    archive = tmp_path / "imagenette2-160.tgz"
    _fake_imagenette(archive)
    monkeypatch.setattr(mdata, "IMAGENETTE_URL", archive.as_uri())  # "published": another md5
    with pytest.raises(DataError, match=r"imagenette2-160.tgz is corrupt: its md5 is [0-9a-f]{32}, "
                                        r"the published one is e793b78c"):
        load("imagenette", "test", cache_dir=tmp_path / "cache", download=True, quick=True)
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []  # nothing kept


def test_a_download_has_a_timeout_and_its_failure_names_the_url(tmp_path, monkeypatch):
    seen = {}

    def stalled(url, timeout=None):
        seen["timeout"] = timeout
        raise TimeoutError("timed out")

    monkeypatch.setattr(mdata.urllib.request, "urlopen", stalled)
    with pytest.raises(DataError, match=f"downloading {mdata.IMAGENETTE_URL} failed \\(timed out\\)"):
        load("imagenette", "test", cache_dir=tmp_path / "cache", download=True, quick=True)
    assert seen["timeout"] == mdata.DOWNLOAD_TIMEOUT_S
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []
