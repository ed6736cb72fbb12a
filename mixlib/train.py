"""Training: one loop for every preset, resumable, with its results written down.

    python -m mixlib.train --model dwconv_cifar --data cifar10 --epochs 10
    python -m mixlib.train --model dwconv_cifar --data cifar10 --epochs 10 --resume
    torchrun --nproc-per-node 2 -m mixlib.train --model dwconv_cifar --data cifar10

The recipe (the fast CIFAR recipes' ingredients that suit any mixer): data held as uint8 tensors
on the device, random crop and flip on whole batches (and Cutout with ``--cutout``), AdamW (or
Nesterov SGD, ``--optimizer sgd``) with linear warm-up and cosine decay, no weight decay on norms
and biases, label smoothing, an exponential moving average of the weights, flip test-time
augmentation, channels_last, and on a GPU bf16 autocast (or float16 with a gradient scaler) and
optionally torch.compile. On a CPU with bf16 matrix units (AMX), ``--amp bf16`` asks for
autocast there too; the depthwise convolutions then stay in float32, which oneDNN runs faster
(``mixlib.ops.local_aggregate``).

A run writes into ``--out/<run>/``: ``metrics.jsonl`` (one line per epoch), ``checkpoint.pt``
(written atomically every ``--checkpoint-every`` steps and at the end of every epoch) and, when
it finishes, ``result.json`` with the model, data, seed, budget, accuracy, wall time,
hardware, versions and commit (``commits``: the commit of every start and resume;
``machines``: the processor of each), the per-epoch history and the training-loss curve
(``step_log``, one point every ``--log-every`` steps). ``--resume`` continues from the
checkpoint, mid-epoch included, and on the CPU ends with exactly the weights of an
uninterrupted run: the data order, the augmentation and the dropout draw from generators whose
states the checkpoint holds.
A start from scratch refuses a folder that already holds a run (it would overwrite one and mix
their metrics), and nothing restarts or resumes a finished one; a run holds an OS lock on its
folder (released when the process ends, killed or not), so a second run into it is refused.
A resume refuses other settings than the checkpoint's (the budget, the data, the recipe), and a
checkpoint that cannot be read back whole (its checksum) is an error that names it. A loss, a
gradient norm or weights that are not finite stop the run with a message; no checkpoint holds
them, and ``diverged.json`` records the run as far as it got (the record ``result.json`` would
hold, with no accuracy, and ``diverged``: the step, the epoch and the message), so that the
sweep can score it by the protocol's rule rather than train it again. SIGTERM and
Ctrl-C stop the run at the end of the current step with a checkpoint (under torchrun, at the
next step that logs, within ``--log-every`` steps, where the processes agree; exit status
128 + the signal's number); a second one stops it at once. Bad settings are refused before
anything is trained (a usage error on the command line): non-finite numbers, an absent device, a run folder
that cannot be written, a batch or an image count the data cannot fill.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from . import data as mdata
from . import models
from .files import (DiskFullError, atomic_write, load_checked, naming_a_full_disk,
                    remove_stale_parts, save_checked)
from .provenance import code_commit, environment, machine_name
from .layers import check_bool, check_float, check_int

__all__ = ["TrainConfig", "train", "main", "NonFiniteLoss", "RunFolderError", "CheckpointError",
           "SettingError"]

# what a resumed run must share with the run that wrote the checkpoint: the budget, the data and
# the recipe (a field added later is compared with its default when an older checkpoint lacks it)
RESUME_MUST_MATCH = ("model", "data", "epochs", "batch_size", "seed", "max_train_images", "quick",
                     "model_kwargs", "image_size", "log_every", "padding", "cutout", "optimizer",
                     "lr", "weight_decay", "momentum", "warmup_epochs", "label_smoothing", "ema",
                     "tta", "channels_last")
AMP = ("auto", "bf16", "fp16", "off")

# each optimizer's own scale of learning rate and weight decay: AdamW's decay is decoupled
# (multiplied by the learning rate), SGD's is an L2 term in the gradient
OPTIMIZER_DEFAULTS = {"adamw": {"lr": 2e-3, "weight_decay": 0.05},
                      "sgd": {"lr": 0.2, "weight_decay": 5e-4}}


class NonFiniteLoss(RuntimeError):
    """The loss, a gradient norm or the weights became NaN or infinite; the last checkpoint
    holds the last good state, and the run folder's ``diverged.json`` the run up to then."""


class RunFolderError(ValueError):
    """The run folder does not fit the request: a start from scratch where a run already is,
    a resume whose checkpoint was made with other settings, a folder another run holds.
    Nothing has been written."""


class CheckpointError(RunFolderError):
    """A checkpoint that cannot be read back whole: truncated, overwritten, or with content that
    does not match the checksum it was saved with. Nothing has been written."""


class SettingError(ValueError):
    """A setting this machine, the disk or the data cannot meet (an absent device, a run folder
    that cannot be written, more images or a larger batch than the data holds), found before
    anything was trained."""


@dataclass
class TrainConfig:
    model: str
    data: str = "cifar10"
    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "adamw"  # or "sgd": Nesterov momentum, as in the fast CIFAR recipes
    lr: float | None = None  # None: the optimizer's default (OPTIMIZER_DEFAULTS)
    weight_decay: float | None = None  # None: the optimizer's default
    momentum: float = 0.9  # SGD only
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    ema: float = 0.999  # 0 turns the moving average off
    tta: bool = True
    padding: int = 4  # the largest random shift, in pixels
    cutout: int = 0  # the side of the square cut out of each training image; 0: none
    image_size: int | None = None  # Imagenette: 128 or 160 (stored images, shifted, resized)
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # "bf16", "fp16", "off"; auto = bf16 on a GPU that has it, else off
    compile: bool = False
    channels_last: bool = True
    checkpoint_every: int = 100  # steps
    log_every: int = 20  # steps between the points of the training-loss curve (``step_log``)
    out: str = "results/runs"
    run: str | None = None  # the run's folder name; default <model>-<data>-s<seed>-e<epochs>
    stop_after_steps: int | None = None  # stop (as if killed) after this many steps: tests
    max_train_images: int | None = None  # use only N training images, balanced over the classes
    quick: bool | None = None  # MIXLIB_QUICK's subset
    model_kwargs: dict = field(default_factory=dict)  # e.g. {"width": 16} for a small preset

    def __post_init__(self):
        for name in ("epochs", "batch_size", "checkpoint_every", "log_every"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        check_int("cutout", self.cutout, minimum=0)  # 0: none
        check_int("padding", self.padding, minimum=0)  # 0: no shift
        for name in ("image_size", "stop_after_steps", "max_train_images"):  # None: not asked for
            if getattr(self, name) is not None:  # (a 0 used to mean "all images" or "no stop")
                check_int(name, getattr(self, name))
        # NaN passes no range test written as `value < 0`: every float is checked finite here,
        # before a NaN learning rate could fill a checkpoint with NaN weights
        check_float("ema", self.ema, minimum=0.0, below=1.0)  # 0 turns the average off
        for name in ("tta", "channels_last", "compile"):  # "False" is truthy: it would turn it on
            check_bool(name, getattr(self, name))
        if self.quick is not None:
            check_bool("quick", self.quick)
        if not isinstance(self.model_kwargs, dict):
            raise ValueError(f"model_kwargs must be a dict, got {self.model_kwargs!r}")
        if self.optimizer not in OPTIMIZER_DEFAULTS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_DEFAULTS)}, "
                             f"got {self.optimizer!r}")
        for name, value in OPTIMIZER_DEFAULTS[self.optimizer].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        check_float("momentum", self.momentum, minimum=0.0, below=1.0)
        check_float("weight_decay", self.weight_decay, minimum=0.0)
        check_float("lr", self.lr, above=0.0)
        check_float("warmup_epochs", self.warmup_epochs, minimum=0.0)
        check_float("label_smoothing", self.label_smoothing, minimum=0.0, below=1.0)
        if self.amp not in AMP:
            raise ValueError(f"amp must be one of {AMP}, got {self.amp!r}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ValueError(f"device must be 'auto' or a torch device such as 'cpu' or "
                                 f"'cuda:0', got {self.device!r}") from None
        if self.run is not None and (self.run in ("", ".", "..") or "/" in self.run):
            raise ValueError(f"run (the run folder's name, --name) must be a folder name, "
                             f"got {self.run!r}")
        if self.data not in mdata.DATASETS:
            raise ValueError(f"data must be one of {sorted(mdata.DATASETS)}, got {self.data!r}")
        stored = mdata.DATASETS[self.data].image_size  # the shift reflects the stored images
        if self.padding >= stored:
            raise ValueError(f"padding must be less than the {stored}-pixel side of the "
                             f"{self.data} images, got padding={self.padding}")
        side = self.image_size or stored  # the training images' side, after any resize
        if self.cutout > side:
            raise ValueError(f"cutout must be at most the {side}-pixel side of the training images, "
                             f"got cutout={self.cutout}")

    def run_name(self) -> str:
        # settings a resume refuses get their own folder; a precision only when asked for by
        # name ("auto" is the device's own choice, resolved later)
        amp = f"-{self.amp}" if self.amp in ("bf16", "fp16") else ""
        cut = f"-cutout{self.cutout}" if self.cutout else ""
        opt = f"-{self.optimizer}" if self.optimizer != "adamw" else ""
        return self.run or f"{self.model}-{self.data}-s{self.seed}-e{self.epochs}{amp}{cut}{opt}"


# ----------------------------------------------------------------------------------------------
# The pieces


def _param_groups(model: nn.Module, weight_decay: float):
    """Weight decay on weight matrices and kernels only: not on norms, biases or scales (fewer
    than 2 dimensions), nor on the tables each mixer declares (``MixerInfo.no_weight_decay``)."""
    from .mixers import no_weight_decay

    tables = no_weight_decay(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and name not in tables else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _optimizer(config: TrainConfig, model: nn.Module, *, fused: bool | None):
    groups = _param_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True,
                               fused=fused)
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999), fused=fused)


def _build_model(config: TrainConfig, num_classes: int, device: torch.device) -> nn.Module:
    kwargs = dict(config.model_kwargs)
    if config.image_size:
        kwargs["image_size"] = config.image_size
    try:
        model = models.build(config.model, num_classes=num_classes, **kwargs)
    except TypeError as error:  # e.g. --width for a paper preset, which has none
        if not kwargs:  # not an argument of ours: a bug, with its traceback
            raise
        raise SettingError(f"model={config.model!r} does not take {kwargs}: {error}") from error
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def _saved_config(state: dict) -> TrainConfig:
    """The config a checkpoint was made with; a checkpoint from before a field existed was
    made with its default."""
    return TrainConfig(**{**asdict(TrainConfig(model=state["config"]["model"])), **state["config"]})


def learning_rate(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return peak * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class EMA:
    """An exponential moving average of a model's parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = _copy_model(model)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # short warm-up of the average
        for mine, theirs in zip(self.model.state_dict().values(), model.state_dict().values()):
            if mine.dtype.is_floating_point:
                mine.lerp_(theirs, 1 - decay)
            else:
                mine.copy_(theirs)


def _copy_model(model: nn.Module) -> nn.Module:
    import copy
    clone = copy.deepcopy(model)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _distributed(cuda: bool) -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun (NCCL for CUDA
    tensors, gloo for CPU ones)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), world


# ----------------------------------------------------------------------------------------------
# The loop


@torch.no_grad()
def evaluate(model: nn.Module, data: mdata.ImageData, *, batch_size: int, device: torch.device,
             tta: bool, channels_last: bool, image_size: int | None = None,
             batch_statistics: bool = False) -> float:
    """Top-1 accuracy; with tta, the logits of the image and its mirror are averaged.

    With batch_statistics, every BatchNorm normalises with the statistics of the batch it is
    given instead of its running ones (a diagnosis of the running statistics, not the protocol's
    metric: it depends on the batches, so give it shuffled data); the running statistics are
    left as they were.
    """
    model.eval()
    norms = batch_norms(model) if batch_statistics else []
    kept = [{k: v.clone() for k, v in bn.state_dict().items()} for bn in norms]
    for bn in norms:
        bn.train()
    try:
        correct = 0
        for images, labels in mdata.iterate_batches(data, batch_size):
            x = _prepare(images.to(device), data.spec, channels_last, image_size, train=False)
            logits = model(x)
            if tta:
                logits = logits + model(x.flip(3))
            correct += int((logits.argmax(1) == labels.to(device)).sum())
    finally:
        for bn, state in zip(norms, kept):
            bn.load_state_dict(state)
            bn.eval()
    return correct / len(data)


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers (any dimension, SyncBatchNorm included)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, data: mdata.ImageData, *, batch_size: int,
                         device: torch.device, channels_last: bool = False,
                         image_size: int | None = None) -> nn.Module:
    """Replace every BatchNorm's running statistics by their plain average over one pass of
    `data` (without augmentation): the statistics of the weights as they are now, rather than
    an average gathered while they moved. Returns `model`, in evaluation mode."""
    norms = batch_norms(model)
    if not norms:
        raise ValueError(f"model {type(model).__name__} has no BatchNorm layer to recompute")
    model.eval()
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # None: a cumulative (plain) average over the batches of the pass
        bn.train()
    try:
        for images, _ in mdata.iterate_batches(data, batch_size):
            model(_prepare(images.to(device), data.spec, channels_last, image_size, train=False))
    finally:
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
            bn.eval()
    return model


def _prepare(images, spec, channels_last, image_size, *, train, generator=None, padding=0,
             cutout=0):
    """uint8 batch -> normalised float input: augmented when training, resized if asked."""
    if train:
        images = mdata.random_crop_flip(images, padding=padding, generator=generator)
    x = mdata.normalize(images, spec)
    if image_size and x.shape[-1] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True,
                          align_corners=False)
    if train and cutout:  # after normalising: the cut square is the mean colour
        x = mdata.cutout(x, size=cutout, generator=generator)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _device(config: TrainConfig) -> torch.device:
    """The device to train on, refused by name when this machine does not have it."""
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(config.device)
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:  # no driver, no such index, not compiled in
        raise SettingError(f"device={config.device!r} is not available on this machine "
                           f"({str(error).splitlines()[0]})") from None
    return device


class _RunFolder:
    """The run folder, for one run at a time: made if needed, locked (flock on the folder itself:
    the kernel releases it when the process ends, killed or not, and nothing is left in the
    folder), checked for writing, and cleared of the temporary files of a killed run. A folder
    this run made and left empty (a setting refused before training) is removed again."""

    def __init__(self, path: Path, *, out: str, lead: bool):
        self.path, self.out, self.lead = path, out, lead
        self.fd, self.made = None, False

    def __enter__(self):
        if not self.lead:  # under torchrun, rank 0 writes and holds the lock
            return self
        self.made = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as error:  # a file where a folder should be, no permission, ...
            self._release(failed=True)
            raise SettingError(f"out={self.out!r}: the run folder {self.path} cannot be made or "
                               f"opened ({error.strerror})") from None
        try:
            for attempt in range(10):  # `sweep plan` looks at the lock for a moment (LOCK_SH)
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == 9:
                        raise
                    time.sleep(0.1)
        except BlockingIOError:
            self._release(failed=True)
            raise RunFolderError(f"{self.path} is in use: another process is training into it "
                                 f"(it holds the folder's lock); wait for it to end, or start "
                                 f"this run under another name (--name) or folder (--out)") from None
        try:  # now, not at the first checkpoint 100 steps in
            tempfile.TemporaryFile(dir=self.path).close()
        except OSError as error:
            self._release(failed=True)
            raise SettingError(f"out={self.out!r}: the run folder {self.path} cannot be written "
                               f"({error.strerror})") from None
        remove_stale_parts(self.path, any_writer=True)  # the lock holder is the only writer
        return self

    def __exit__(self, kind, error, traceback):
        self._release(failed=kind is not None)

    def _release(self, *, failed: bool) -> None:
        if failed and self.made:
            try:
                self.path.rmdir()  # only if empty: a run that wrote anything keeps its folder
            except OSError:
                pass
        if self.fd is not None:
            os.close(self.fd)  # and with it the lock
            self.fd = None


class _StopSignals:
    """SIGTERM and SIGINT (Ctrl-C) ask the loop to stop at the end of the current step, with a
    checkpoint; a second one acts as it would have without this (the handler before it). Only
    the main thread can install handlers; elsewhere nothing changes."""

    def __init__(self):
        self.received: str | None = None
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number, frame):
        self.received = signal.Signals(number).name
        signal.signal(number, self._previous[number])

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def requested(self, world: int, device: torch.device) -> bool:
        """Whether a signal came, to this process or (under torchrun) to any: all stop together."""
        if world == 1:
            return self.received is not None
        flag = torch.tensor([float(self.received is not None)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.received is None:
            self.received = "a signal to another process"
        return bool(flag.item())


def _load_checkpoint(path: Path) -> dict:
    """The checkpoint at `path`, checked against the checksum it was saved with (checkpoints from
    before the checksum are read unchecked); a file that cannot be read back whole is a
    CheckpointError that names it."""
    remedy = "restore it from a copy, or move it away and start the run again"
    state = load_checked(path, CheckpointError, remedy=remedy, map_location="cpu",
                         weights_only=False)  # RNG states stay on the CPU
    if "model" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of mixlib.train; {remedy}")
    return state


def _last_good(checkpoint_path: Path) -> str:
    return (f"the last good state is in {checkpoint_path}" if checkpoint_path.is_file() else
            f"no checkpoint was written before it ({checkpoint_path} does not exist)")


def _not_finite(modules: dict) -> list[str]:
    """The floating-point tensors of the modules' state dicts that hold NaN or infinity."""
    return [f"{owner}.{name}" for owner, module in modules.items() if module is not None
            for name, t in module.state_dict().items()
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _complete_metrics(path: Path, history: list[dict], log) -> None:
    """metrics.jsonl as the checkpoint's history says: a kill between the end-of-epoch
    checkpoint and the line's append lost the line (the resume goes on from the next epoch)."""
    expected = "".join(json.dumps(record) + "\n" for record in history)
    current = path.read_text() if path.is_file() else ""
    if current == expected:
        return
    with naming_a_full_disk(path):
        if expected.startswith(current):  # lines missing at the end: appended
            with open(path, "a") as f:
                f.write(expected[len(current):])
        else:  # a half-written line, or lines the checkpoint does not have: rewritten whole
            atomic_write(path, lambda tmp: tmp.write_text(expected))
    log(f"{path}: the lines of epochs the checkpoint holds and it lacked were written again")


def train(config: TrainConfig, *, resume: bool = False, log=print) -> dict:
    """Train `config.model` on `config.data`; returns the result record (also written to disk).

    A run stopped early (``stop_after_steps``, or SIGTERM / SIGINT) returns
    ``{"stopped_at_step": step}``, with ``"stopped_by"``: the signal's name, if one stopped it.
    """
    device = _device(config)
    rank, world = _distributed(device.type == "cuda")
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    amp = config.amp
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"
    run_dir = Path(config.out) / config.run_name()
    with _RunFolder(run_dir, out=config.out, lead=rank == 0), _StopSignals() as signals:
        return _train(config, resume, log, device=device, rank=rank, world=world, amp=amp,
                      run_dir=run_dir, signals=signals)


def _train(config: TrainConfig, resume: bool, log, *, device: torch.device, rank: int, world: int,
           amp: str, run_dir: Path, signals: _StopSignals) -> dict:
    commit = code_commit()  # the code this run starts with (files edited during a run do not count)
    commits = [commit]  # one per start and resume: a run resumed across commits ran them all
    machines = [machine_name(environment(device))]  # the same for processors: "hardware" is the last
    checkpoint_path = run_dir / "checkpoint.pt"
    elsewhere = "start a new one under another name (--name) or folder (--out)"
    if (run_dir / "result.json").is_file():  # a resume would only rewrite its record
        raise RunFolderError(f"{run_dir} holds a finished run (result.json): {elsewhere}")
    has_checkpoint = checkpoint_path.is_file()
    resuming = resume and has_checkpoint
    # a start from scratch would overwrite the checkpoint and append to the old run's metrics
    found = [f.name for f in (checkpoint_path, run_dir / "metrics.jsonl") if f.is_file()]
    if found and not resuming:
        how = "resume it (--resume), or " if has_checkpoint else ""
        raise RunFolderError(f"{run_dir} already holds a run ({', '.join(found)}): {how}{elsewhere}")

    torch.manual_seed(config.seed)
    try:
        train_data = mdata.load(config.data, "train", quick=config.quick)
        test_data = mdata.load(config.data, "test", quick=config.quick)
    except (FileNotFoundError, mdata.DataError) as error:  # no archive, a corrupt one: a setting
        raise SettingError(f"data={config.data!r}: {error}") from error
    if config.max_train_images is not None:
        if config.max_train_images > len(train_data):
            raise SettingError(f"max_train_images={config.max_train_images} is more than the "
                               f"{len(train_data)} training images")
        train_data = train_data.balanced_head(config.max_train_images)
    train_data, test_data = train_data.to(device), test_data.to(device)

    model = _build_model(config, len(train_data.spec.classes), device)
    ema = EMA(model, config.ema) if config.ema else None
    optimizer = _optimizer(config, model, fused=device.type == "cuda" or None)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    if config.batch_size % world:
        raise SettingError(f"batch_size={config.batch_size} must be a multiple of the {world} processes")
    local_batch = config.batch_size // world
    steps_per_epoch = len(train_data) // config.batch_size  # full batches only
    if steps_per_epoch == 0:
        raise SettingError(f"batch_size={config.batch_size} is larger than the {len(train_data)} "
                           f"training images")
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)

    # state that a resume must restore: model, EMA, optimizer, scaler, position, RNGs
    order_rng = torch.Generator().manual_seed(config.seed)  # the data order (CPU, all ranks)
    augment_rng = torch.Generator(device=device).manual_seed(config.seed * 1000 + rank)
    step, elapsed, history = 0, 0.0, []
    step_log, window = [], (0, 0.0)  # the loss curve; images and summed loss since its last point
    epoch_order = None
    epoch_stats = (0, 0, 0.0)  # images seen, correct, summed loss: so far in this epoch
    metrics_path = run_dir / "metrics.jsonl"
    if resuming:
        state = _load_checkpoint(checkpoint_path)
        saved = asdict(_saved_config(state))
        for key in RESUME_MUST_MATCH:
            if saved[key] != getattr(config, key):
                raise RunFolderError(f"--resume with {key}={getattr(config, key)!r}, but the "
                                     f"checkpoint in {run_dir} was made with {key}={saved[key]!r}")
        # the training set it was made on: MIXLIB_QUICK is read from the environment, and a
        # resume under another setting would continue the order of another data set (checkpoints
        # from before this was kept: the length of their epoch's order, when they are mid-epoch)
        images = state.get("train_images", None if state["epoch_order"] is None
                           else len(state["epoch_order"]))
        if images is not None and images != len(train_data):
            raise RunFolderError(f"--resume with {len(train_data)} training images, but the "
                                 f"checkpoint in {run_dir} was made with {images} (is "
                                 f"MIXLIB_QUICK set differently, or the data folder another?)")
        # its generators' states belong to the device type they were drawn on
        if state.get("device_type", device.type) != device.type:
            raise RunFolderError(f"--resume on device={config.device!r} ({device.type}), but the "
                                 f"checkpoint in {run_dir} was trained on {state['device_type']}")
        if state.get("amp", amp) != amp:  # checkpoints from before it was kept pass unchecked
            raise RunFolderError(f"--resume with amp={config.amp!r} (precision {amp!r} here), but "
                                 f"the checkpoint in {run_dir} was trained with precision "
                                 f"{state['amp']!r}")
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.model.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        order_rng.set_state(state["order_rng"])
        if "rank_rngs" in state:  # each rank's own generators
            if len(state["rank_rngs"]) != world:
                raise RunFolderError(f"--resume with {world} processes, but the checkpoint "
                                     f"in {run_dir} was made by {len(state['rank_rngs'])}")
            own = state["rank_rngs"][rank]
        elif world == 1:  # a checkpoint from before they were saved per rank
            own = {key: state.get(key) for key in ("augment_rng", "torch_rng", "cuda_rng")}
        else:
            raise RunFolderError(f"the checkpoint in {run_dir} holds one process's generators "
                                 f"(it predates per-rank ones): resume it with one process")
        augment_rng.set_state(own["augment_rng"])
        torch.set_rng_state(own["torch_rng"])
        if device.type == "cuda" and own.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(own["cuda_rng"], device)  # dropout and drop path on the GPU
        step, elapsed, history, epoch_order = (state["step"], state["elapsed"], state["history"],
                                               state["epoch_order"])
        epoch_stats = state["epoch_stats"]
        step_log, window = state["step_log"], state["window"]
        commits = state.get("commits", [None]) + [commit]  # None: a checkpoint from before they were kept
        # one None per earlier start or resume, so that machines[i] ran commits[i]
        machines = state.get("machines", [None] * (len(commits) - 1)) + machines
        if rank == 0:
            _complete_metrics(metrics_path, history, log)
        log(f"resumed {run_dir} at step {step} of {total_steps}")
    elif resume:
        log(f"no checkpoint in {run_dir}: starting from scratch")

    seen, correct, loss_sum = epoch_stats

    def checkpoint():  # called by every rank at the same steps
        # every rank checks (their weights are the same): one raising alone would leave the
        # others waiting in the next all-reduce
        not_finite = _not_finite({"model": model, "ema": ema.model if ema else None})
        if not_finite:
            last_epoch = (step - 1) // steps_per_epoch + 1  # that of the last step taken
            raise diverge(f"weights that are not finite at step {step} ({', '.join(not_finite[:3])}"
                          f"{', ...' if len(not_finite) > 3 else ''}), not saved; "
                          f"{_last_good(checkpoint_path)}", step, last_epoch)
        rngs = {"augment_rng": augment_rng.get_state().cpu(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
        rank_rngs = [rngs]
        if world > 1:  # every rank draws its own crops and flips: rank 0 saves them all
            rank_rngs = [None] * world
            dist.all_gather_object(rank_rngs, rngs)
        if rank != 0:
            return
        snapshot = {"model": model.state_dict(), "ema": ema.model.state_dict() if ema else None,
                    "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                    "order_rng": order_rng.get_state(), "rank_rngs": rank_rngs,
                    "step": step, "elapsed": elapsed, "history": history, "epoch_order": epoch_order,
                    "epoch_stats": (seen, correct, loss_sum), "step_log": step_log,
                    "window": window, "config": asdict(config), "commits": commits,
                    "machines": machines,
                    "amp": amp,  # the precision "auto" resolved to on this device
                    "train_images": len(train_data), "device_type": device.type}
        save_checked(checkpoint_path, snapshot)  # with the checksum of its content

    pending = []  # (step, epoch, images, then the device's loss, gradient norm, correct) per step

    def settle():
        """Read the steps since the last call from the device in one transfer: the loss and
        accuracy sums, the loss curve's window, and the check that every loss and gradient norm
        was finite (all ranks stop at the same step, or none). Called every `log_every` steps and
        before every checkpoint and evaluation, so a run reads the device a few times an epoch
        rather than several times a step; a bad step is still named exactly, and never saved."""
        nonlocal correct, loss_sum, window
        if not pending:
            return
        columns = zip(*(entry[3:] for entry in pending))  # losses, norms, corrects
        values = torch.stack([torch.stack(column).double() for column in columns], 1).tolist()
        bad_loss = next((i for i, (loss, _, _) in enumerate(values) if not math.isfinite(loss)),
                        len(values))
        if world > 1:  # the earliest bad loss on any rank
            flag = torch.tensor([bad_loss], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            bad_loss = int(flag.item())
        bad_grad = next((i for i, (_, norm, _) in enumerate(values) if not math.isfinite(norm)),
                        len(values))
        if min(bad_loss, bad_grad) < len(values):
            i = min(bad_loss, bad_grad)
            at, epoch_of, *_ = pending[i]
            loss, norm, _ = values[i]
            if bad_loss <= bad_grad:
                where = (f"the loss is {loss}" if world == 1 else
                         f"rank {rank}'s loss is {loss}" if not math.isfinite(loss) else
                         f"another rank's loss is not finite (rank {rank}'s is {loss})")
                raise diverge(f"a loss that is not finite at step {at} (epoch {epoch_of + 1}; "
                              f"{where}); {_last_good(checkpoint_path)}", at, epoch_of + 1)
            raise diverge(f"the gradient norm is {norm} at step {at} (epoch {epoch_of + 1}); "
                          f"{_last_good(checkpoint_path)}", at, epoch_of + 1)
        for (_, _, images, *_), (loss, _, right) in zip(pending, values):
            correct += int(right)
            loss_sum += loss * images
            window = (window[0] + images, window[1] + loss * images)
        pending.clear()

    def stopped() -> dict:
        return {"stopped_at_step": step, **({"stopped_by": signals.received} if signals.received else {})}

    def result_record() -> dict:
        """What result.json holds: the run's identity, budget, accuracy, time and provenance."""
        return {"model": config.model, "dataset": config.data, "seed": config.seed,
                "epochs": config.epochs, "steps": total_steps, "batch_size": config.batch_size,
                "test_acc": history[-1]["test_acc"] if history else None,
                "best_test_acc": max(h["test_acc"] for h in history) if history else None,
                "train_time_s": elapsed, "params": sum(p.numel() for p in model.parameters()),
                "train_images": len(train_data),
                "quick": bool(config.quick if config.quick is not None else mdata.quick_mode()),
                "world_size": world, "amp": amp, "hardware": environment(device),
                "torch": torch.__version__, "python": platform.python_version(),
                "commit": commit, "commits": commits, "machines": machines,
                "config": asdict(config),
                "history": history, "step_log": step_log}

    def diverge(message: str, at: int, epoch: int) -> NonFiniteLoss:
        """The error that stops a run at step `at` of `epoch` (counted from 1), where something
        became non-finite, after rank 0 has written the run as far as it got into
        diverged.json: its finished epochs, no accuracy, and where it stopped. The training
        time is the one recorded at the last epoch's end or checkpoint."""
        if rank == 0:
            written = {**result_record(), "test_acc": None, "best_test_acc": None,
                       # weights found non-finite at an epoch's end were evaluated first
                       "history": [h for h in history if h["epoch"] < epoch],
                       "diverged": {"step": at, "epoch": epoch, "reason": message}}
            atomic_write(run_dir / "diverged.json",
                         lambda tmp: tmp.write_text(json.dumps(written, indent=1)))
        return NonFiniteLoss(message)

    train_model = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    from tqdm import tqdm  # not tqdm.auto: it warns in notebooks without ipywidgets
    while step < total_steps:
        epoch, index = divmod(step, steps_per_epoch)
        if index == 0 or epoch_order is None:
            epoch_order = torch.randperm(len(train_data), generator=order_rng)
        model.train()
        started = time.perf_counter()
        seen, correct, loss_sum = epoch_stats if index else (0, 0, 0.0)
        epoch_stats = (0, 0, 0.0)
        stop = False
        bar = tqdm(total=steps_per_epoch, initial=index, desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=rank != 0 or not sys.stderr.isatty(), leave=False)
        while index < steps_per_epoch:
            batch = epoch_order[index * config.batch_size:(index + 1) * config.batch_size]
            batch = batch[rank * local_batch:(rank + 1) * local_batch].to(device)  # this rank's share
            x = _prepare(train_data.images[batch], train_data.spec, config.channels_last,
                         config.image_size, train=True, generator=augment_rng, padding=config.padding,
                         cutout=config.cutout)
            y = train_data.labels[batch]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total_steps, warmup_steps, config.lr)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = train_model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            grad_norm = loss.new_zeros(())  # fp16's scaler skips steps with inf gradients itself
            if not scaler.is_enabled():
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model, step)
            # what the step's numbers need stays on the device until settle() reads it
            pending.append((step, epoch, len(y), loss.detach(), grad_norm.detach(),
                            (logits.detach().argmax(1) == y).sum()))
            step += 1
            index += 1
            seen += len(y)
            if step % config.log_every == 0:
                settle()
                step_log.append({"step": step, "epoch": step / steps_per_epoch,
                                 "train_loss": window[1] / window[0],
                                 "train_time_s": elapsed + time.perf_counter() - started})
                window = (0, 0.0)
                if not bar.disable:
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                                    img_s=f"{seen * world / (time.perf_counter() - started):.0f}")
            bar.update(1)
            # at the end of a step: the generators hold no draw of the next one yet. Under
            # torchrun the ranks agree on a signal by an all-reduce, a host sync: only at the
            # steps that settle anyway and at an epoch's end, all ranks at the same steps
            agree = world == 1 or step % config.log_every == 0 or index == steps_per_epoch
            stop = ((config.stop_after_steps is not None and step >= config.stop_after_steps)
                    or (agree and signals.requested(world, device)))
            if stop and index < steps_per_epoch:  # mid-epoch: checkpoint and leave
                elapsed += time.perf_counter() - started
                settle()
                checkpoint()
                bar.close()
                return stopped()
            if stop:
                break  # at an epoch's end: evaluate and checkpoint first
            if step % config.checkpoint_every == 0 and index < steps_per_epoch:
                elapsed += time.perf_counter() - started
                started = time.perf_counter()
                settle()
                checkpoint()
        bar.close()
        elapsed += time.perf_counter() - started
        settle()
        evaluated = ema.model if ema is not None else model
        test_acc = evaluate(evaluated, test_data, batch_size=512, device=device, tta=config.tta,
                            channels_last=config.channels_last, image_size=config.image_size)
        record = {"epoch": epoch + 1, "step": step, "train_loss": loss_sum / max(seen, 1),
                  "train_acc": correct / max(seen, 1), "test_acc": test_acc,
                  "lr": learning_rate(step - 1, total_steps, warmup_steps, config.lr),
                  "train_time_s": elapsed}
        history.append(record)
        epoch_order = None
        checkpoint()
        if rank == 0:  # after the checkpoint: a kill in between loses the line, which the
            # resume writes again (_complete_metrics); before it, it would be written twice
            with naming_a_full_disk(metrics_path), open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            log(f"epoch {epoch + 1}/{config.epochs}: loss {record['train_loss']:.3f}, "
                f"train acc {record['train_acc']:.3f}, test acc {test_acc:.4f}, {elapsed:.0f} s")
        stop = stop or signals.requested(world, device)  # a signal during the evaluation
        if stop and step < total_steps:
            return stopped()

    result = result_record()
    if rank == 0:  # written whole or not at all: scripts take its presence for a finished run
        atomic_write(run_dir / "result.json",
                     lambda tmp: tmp.write_text(json.dumps(result, indent=1)))
        # a resume past the step that diverged before (a GPU's arithmetic need not repeat it)
        (run_dir / "diverged.json").unlink(missing_ok=True)
    return result


def evaluate_checkpoint(run_dir: str | os.PathLike, *, device: str = "cpu") -> dict:
    """Test accuracy of a run's checkpoint twice: with the moving average of the weights (what
    the run reports) and with the weights themselves. On a short schedule the average lags the
    decaying learning rate; this measures by how much."""
    run_dir = Path(run_dir)
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"run_dir={str(run_dir)!r} holds no checkpoint.pt")
    state = _load_checkpoint(path)
    config = _saved_config(state)
    device = torch.device(device)
    test_data = mdata.load(config.data, "test", quick=config.quick).to(device)
    model = _build_model(config, len(test_data.spec.classes), device)
    accuracy = {}
    for name in ("ema", "model"):
        if state[name] is None:  # a run without the moving average
            continue
        model.load_state_dict(state[name])
        accuracy[name] = evaluate(model, test_data, batch_size=500, device=device, tta=config.tta,
                                  channels_last=config.channels_last, image_size=config.image_size)
    return {"run": run_dir.name, "step": state["step"], "ema_decay": config.ema,
            "test_acc_ema": accuracy.get("ema"), "test_acc_weights": accuracy["model"],
            "tta": config.tta, "test_images": len(test_data), "hardware": environment(device),
            "torch": torch.__version__, "commit": code_commit()}


def nice_across_sessions() -> int:
    """Give this process's session the process's niceness; returns the niceness.

    With Linux's autogroup scheduling the CPU is shared between sessions first, and `nice` only
    orders the processes inside one: a training started with `nice -n 19` in a session of its own
    (`setsid`, as `mixlib.sweep` starts each run) takes as much of the CPU as a person's shell.
    Writing the niceness into /proc/self/autogroup makes `nice` mean what it says. Only a
    session's leader does it: the setting is the whole session's and outlives the process, so a
    training started from a person's shell leaves the shell's priority alone. Nothing happens
    where the kernel has no autogroup, or at niceness 0 and below."""
    niceness = os.nice(0)
    if niceness > 0 and os.getsid(0) == os.getpid():
        try:
            Path("/proc/self/autogroup").write_text(str(niceness))
        except OSError:
            pass
    return niceness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixlib.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainConfig(model="")
    parser.add_argument("--model", required=True, help=f"a preset: {', '.join(models.available())}")
    parser.add_argument("--data", default=defaults.data, choices=sorted(mdata.DATASETS))
    for name in ("epochs", "batch_size", "checkpoint_every", "log_every", "seed", "image_size",
                 "stop_after_steps", "max_train_images"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--optimizer", default=defaults.optimizer, choices=sorted(OPTIMIZER_DEFAULTS))
    for name in ("lr", "weight_decay"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None,
                            help=f"default: the optimizer's ({', '.join(f'{o} {d[name]:g}' for o, d in OPTIMIZER_DEFAULTS.items())})")
    for name in ("momentum", "warmup_epochs", "label_smoothing", "ema"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--padding", type=int, default=defaults.padding)
    parser.add_argument("--cutout", type=int, default=defaults.cutout,
                        help="cut a square of this side out of each training image (0: off)")
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--amp", default=defaults.amp, choices=AMP)
    parser.add_argument("--no-tta", dest="tta", action="store_false")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", default=defaults.out)
    parser.add_argument("--name", dest="run", default=None, help="the run folder's name")
    parser.add_argument("--width", type=int, default=None, help="the width w of a small preset")
    parser.add_argument("--resume", action="store_true")
    args = vars(parser.parse_args(argv))
    resume = args.pop("resume")
    width = args.pop("width")
    args["model_kwargs"] = {"width": width} if width is not None else {}  # (0 is no default)
    if args["model"] not in models.available():
        parser.error(f"--model must be one of {models.available()}, got {args['model']!r}")
    try:
        if width is not None:
            check_int("width", width)
        config = TrainConfig(**args)
    except ValueError as error:  # a bad value on the command line: a usage error, no traceback
        parser.error(str(error))
    nice_across_sessions()
    try:
        result = train(config, resume=resume)
    except (NonFiniteLoss, DiskFullError) as error:
        print(f"stopped: {error}", file=sys.stderr)
        return 2
    except (RunFolderError, SettingError) as error:
        # nothing was trained (a setting, the run folder, or the data): a usage error
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if "stopped_by" in result:
        print(f"stopped by {result['stopped_by']} at step {result['stopped_at_step']}: the checkpoint "
              f"holds it; continue with --resume", file=sys.stderr)
        number = getattr(signal.Signals, result["stopped_by"], None)
        return 128 + int(number) if number is not None else 1
    if "test_acc" in result:
        print(json.dumps({k: result[k] for k in ("model", "dataset", "seed", "epochs", "test_acc",
                                                 "train_time_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
