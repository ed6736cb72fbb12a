"""mixlib.train: the schedule, the parameter groups and optimizers, the result record, an exact
resume from a mid-epoch interruption, the non-finite-loss guard, and two processes under torchrun
(gloo)."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixlib import data as mdata
from mixlib import train as mtrain
from mixlib.data import data_root
from mixlib.provenance import machine_name

needs_data = pytest.mark.skipif(data_root() is None, reason="no data folder")


def tiny_config(tmp_path, **overrides):
    config = dict(model="dwconv_cifar", data="cifar10", epochs=2, batch_size=64, lr=3e-3,
                  warmup_epochs=0.5, checkpoint_every=4, out=str(tmp_path), quick=True,
                  log_every=4, model_kwargs={"width": 8}, device="cpu", run="tiny")
    config.update(overrides)
    return mtrain.TrainConfig(**config)


def test_learning_rate_warms_up_then_decays_to_zero():
    lrs = [mtrain.learning_rate(step, 100, 10, 1.0) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] < 1e-3 and mtrain.learning_rate(100, 100, 10, 1.0) == pytest.approx(0.0)
    assert mtrain.learning_rate(55, 100, 10, 1.0) == pytest.approx(0.5)  # half way: cos(π/2)


def test_no_weight_decay_on_norms_biases_and_bias_tables():
    from mixlib import models
    model = models.build("window_attention_cifar", width=16)
    decay, no_decay = mtrain._param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() >= 2 for p in decay["params"])
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert any(n.endswith("norm1.weight") for n in skipped)
    assert any(n.endswith("relative_position_bias_table") for n in skipped)
    assert any(n.endswith("fc1.bias") for n in skipped)
    assert no_decay["weight_decay"] == 0.0


def test_each_optimizer_gets_its_own_scale_of_lr_and_weight_decay(tmp_path):
    from mixlib import models
    model = models.build("dwconv_cifar", width=8)
    sgd = mtrain.TrainConfig(model="dwconv_cifar", optimizer="sgd")
    adamw = mtrain.TrainConfig(model="dwconv_cifar")
    assert (sgd.lr, sgd.weight_decay) == (mtrain.OPTIMIZER_DEFAULTS["sgd"]["lr"],
                                          mtrain.OPTIMIZER_DEFAULTS["sgd"]["weight_decay"])
    assert (adamw.lr, adamw.weight_decay) == (2e-3, 0.05)
    assert mtrain.TrainConfig(model="dwconv_cifar", optimizer="sgd", lr=0.05).lr == 0.05  # given: kept
    built = mtrain._optimizer(sgd, model, fused=None)
    assert isinstance(built, torch.optim.SGD)
    assert all(g["nesterov"] and g["momentum"] == 0.9 and g["lr"] == sgd.lr for g in built.param_groups)
    assert [g["weight_decay"] for g in built.param_groups] == [sgd.weight_decay, 0.0]
    assert isinstance(mtrain._optimizer(adamw, model, fused=None), torch.optim.AdamW)


@needs_data
def test_a_run_writes_metrics_and_its_result(tmp_path):
    result = mtrain.train(tiny_config(tmp_path, epochs=1), log=lambda *a: None)
    run = tmp_path / "tiny"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["epoch"] == 1
    saved = json.loads((run / "result.json").read_text())
    for key in ("model", "dataset", "seed", "epochs", "test_acc", "train_time_s", "hardware",
                "torch", "commit"):
        assert key in saved, key
    assert saved["test_acc"] == result["test_acc"] and 0.0 <= saved["test_acc"] <= 1.0
    assert saved["quick"] is True and saved["train_time_s"] > 0
    assert not list(run.glob(".*.part"))  # checkpoints are written atomically
    # the checkpoint, evaluated again: its average is what the run reported; its weights differ
    again = mtrain.evaluate_checkpoint(run)
    assert again["test_acc_ema"] == result["test_acc"] and again["step"] == result["steps"]
    assert 0.0 <= again["test_acc_weights"] <= 1.0 and again["test_images"] == 200
    with pytest.raises(FileNotFoundError, match="run_dir=.*nowhere"):
        mtrain.evaluate_checkpoint(tmp_path / "nowhere")


@needs_data
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])  # Adam's moments, SGD's momentum buffers
def test_resume_after_a_mid_epoch_stop_gives_the_same_weights(tmp_path, optimizer):
    # 400 quick images, batch 64: 6 steps an epoch; stop at step 9, in the middle of epoch 2
    lr = {"adamw": 3e-3, "sgd": 0.05}[optimizer]
    straight = mtrain.train(tiny_config(tmp_path / "a", optimizer=optimizer, lr=lr), log=lambda *a: None)
    stopped = mtrain.train(tiny_config(tmp_path / "b", optimizer=optimizer, lr=lr, stop_after_steps=9),
                           log=lambda *a: None)
    assert stopped == {"stopped_at_step": 9}
    resumed = mtrain.train(tiny_config(tmp_path / "b", optimizer=optimizer, lr=lr), resume=True,
                           log=lambda *a: None)
    a = torch.load(tmp_path / "a" / "tiny" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "tiny" / "checkpoint.pt", weights_only=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert resumed["test_acc"] == straight["test_acc"]
    assert resumed["commits"] == [resumed["commit"]] * 2 and straight["commits"] == [straight["commit"]]
    here = machine_name(resumed["hardware"])  # the processor of each start and resume
    assert here != "unknown" and resumed["machines"] == [here] * 2 and straight["machines"] == [here]
    assert [h["train_loss"] for h in resumed["history"]] == pytest.approx(
        [h["train_loss"] for h in straight["history"]])
    # the loss curve too: its window runs across the stop (log_every = 4, stopped at step 9)
    assert [p["step"] for p in resumed["step_log"]] == [4, 8, 12]
    assert [p["train_loss"] for p in resumed["step_log"]] == pytest.approx(
        [p["train_loss"] for p in straight["step_log"]])


@needs_data
def test_resume_reads_a_checkpoint_from_before_per_rank_generators(tmp_path):
    """Checkpoints written before "rank_rngs" kept one process's generators at the top level
    (and had no "commits"); a single process resumes them exactly."""
    mtrain.train(tiny_config(tmp_path / "a"), log=lambda *a: None)
    mtrain.train(tiny_config(tmp_path / "b", stop_after_steps=9), log=lambda *a: None)
    path = tmp_path / "b" / "tiny" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    state.update(state.pop("rank_rngs")[0])  # the old layout
    del state["commits"], state["machines"], state["checksum"]  # the checksum came later still
    del state["config"]["cutout"], state["config"]["padding"]  # fields added later: the defaults
    torch.save(state, path)
    resumed = mtrain.train(tiny_config(tmp_path / "b"), resume=True, log=lambda *a: None)
    assert resumed["commits"] == [None, resumed["commit"]]  # the first start's commit is unknown
    assert resumed["machines"] == [None, machine_name(resumed["hardware"])]  # and its processor
    a = torch.load(tmp_path / "a" / "tiny" / "checkpoint.pt", weights_only=False)
    b = torch.load(path, weights_only=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


@needs_data
def test_a_checkpoint_with_commits_but_no_machines_keeps_the_two_lists_in_step(tmp_path):
    """Checkpoints written before "machines" was kept may already list several commits (a run
    resumed before): one unknown machine per earlier start, so that machines[i] ran commits[i]."""
    mtrain.train(tiny_config(tmp_path, stop_after_steps=9), log=lambda *a: None)
    path = tmp_path / "tiny" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    state["commits"] = ["first", "second"]
    del state["machines"], state["checksum"]
    torch.save(state, path)
    resumed = mtrain.train(tiny_config(tmp_path), resume=True, log=lambda *a: None)
    assert resumed["commits"] == ["first", "second", resumed["commit"]]
    assert resumed["machines"] == [None, None, machine_name(resumed["hardware"])]


@needs_data
def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = mtrain.F.cross_entropy
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 7 else loss

    monkeypatch.setattr(mtrain.F, "cross_entropy", poisoned)
    with pytest.raises(mtrain.NonFiniteLoss, match="step 6"):
        mtrain.train(tiny_config(tmp_path), log=lambda *a: None)
    state = torch.load(tmp_path / "tiny" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 6  # the end of epoch 1, before the bad step
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    # the run as far as it got, for the sweep to score: epoch 1 done, no accuracy, the bad step
    diverged = json.loads((tmp_path / "tiny" / "diverged.json").read_text())
    assert (diverged["model"], diverged["epochs"], diverged["test_acc"]) == ("dwconv_cifar", 2, None)
    assert [h["epoch"] for h in diverged["history"]] == [1]
    assert (diverged["diverged"]["step"], diverged["diverged"]["epoch"]) == (6, 2)
    assert "not finite at step 6" in diverged["diverged"]["reason"]
    assert not (tmp_path / "tiny" / "result.json").exists()
    # a resume that gets past the step (here the poison is gone) is no longer a diverged run
    monkeypatch.setattr(mtrain.F, "cross_entropy", real)
    mtrain.train(tiny_config(tmp_path), resume=True, log=lambda *a: None)
    assert (tmp_path / "tiny" / "result.json").is_file()
    assert not (tmp_path / "tiny" / "diverged.json").exists()


@needs_data
def test_cli_runs_and_reports(tmp_path, capsys):
    code = mtrain.main(["--model", "dwconv_cifar", "--width", "8", "--epochs", "1",
                        "--batch-size", "64", "--out", str(tmp_path), "--name", "cli",
                        "--device", "cpu"])
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs"] == 1
    again = mtrain.main(["--model", "dwconv_cifar", "--width", "8", "--epochs", "1",
                         "--batch-size", "64", "--out", str(tmp_path), "--name", "cli",
                         "--device", "cpu"])
    assert again == 2 and "holds a finished run" in capsys.readouterr().err  # no traceback


def _torchrun(tmp_path, *args, script=None, env=()):
    """Two CPU processes (gloo) on a free port, importing this checkout's mixlib."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "MIXLIB_QUICK": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root),
           **dict(env)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", *([script] if script else ["-m", "mixlib.train"]),
               "--model", "dwconv_cifar", "--width", "8", "--batch-size", "64",
               "--out", str(tmp_path), "--device", "cpu", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=root)


@needs_data
def test_two_processes_with_torchrun_and_gloo(tmp_path):
    done = _torchrun(tmp_path, "--epochs", "1", "--name", "ddp")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert result["world_size"] == 2 and math.isfinite(result["test_acc"])


@needs_data
def test_resume_under_torchrun_gives_the_same_weights(tmp_path):
    """Each rank draws its own crops and flips: the checkpoint holds every rank's generator,
    so a run stopped mid-epoch and resumed ends with an uninterrupted run's weights."""
    straight = _torchrun(tmp_path, "--epochs", "2", "--name", "a")
    assert straight.returncode == 0, straight.stderr[-2000:]
    stopped = _torchrun(tmp_path, "--epochs", "2", "--name", "b", "--stop-after-steps", "9")
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    resumed = _torchrun(tmp_path, "--epochs", "2", "--name", "b", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 12
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


@needs_data
def test_a_non_finite_loss_on_one_rank_stops_every_rank(tmp_path):
    # before the check was all-reduced, rank 0 waited in the gradient all-reduce until the
    # launcher killed it, and the rank that logs never said why
    done = _torchrun(tmp_path, "--epochs", "1", "--name", "ddp-nan",
                     script=str(Path(__file__).with_name("ddp_nan_driver.py")),
                     env={"DDP_NAN_MARK": str(tmp_path / "rank0-stopped")})
    assert done.returncode != 0
    said = done.stdout + done.stderr
    prefix = r"stopped: a loss that is not finite at step 2 \(epoch 1; "
    bad = re.findall(prefix + r"rank (\d)'s loss is ([^)]+)\)", said)
    # the rank with a finite loss stops too, and says the bad loss was another rank's
    good = re.findall(prefix + r"another rank's loss is not finite \(rank (\d)'s is ([^)]+)\)\)",
                      said)
    assert bad == [("1", "nan")] and [rank for rank, _ in good] == ["0"], said[-3000:]
    assert math.isfinite(float(good[0][1]))
    # rank 0 wrote the run's record, with the message it gave
    diverged = json.loads((tmp_path / "ddp-nan" / "diverged.json").read_text())
    assert diverged["diverged"]["step"] == 2
    assert "another rank's loss" in diverged["diverged"]["reason"]


@needs_data
def test_stopping_at_an_epoch_end_keeps_its_evaluation(tmp_path):
    stopped = mtrain.train(tiny_config(tmp_path, stop_after_steps=6), log=lambda *a: None)
    assert stopped == {"stopped_at_step": 6}
    lines = (tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["epoch"] == 1
    resumed = mtrain.train(tiny_config(tmp_path), resume=True, log=lambda *a: None)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]


@needs_data
def test_resume_refuses_a_different_budget(tmp_path):
    mtrain.train(tiny_config(tmp_path, stop_after_steps=3), log=lambda *a: None)
    with pytest.raises(ValueError, match="batch_size=32"):
        mtrain.train(tiny_config(tmp_path, batch_size=32), resume=True, log=lambda *a: None)
    with pytest.raises(mtrain.RunFolderError, match="cutout=8"):  # nor a different augmentation
        mtrain.train(tiny_config(tmp_path, cutout=8), resume=True, log=lambda *a: None)
    with pytest.raises(mtrain.RunFolderError, match="optimizer='sgd'"):  # nor another optimizer
        mtrain.train(tiny_config(tmp_path, optimizer="sgd"), resume=True, log=lambda *a: None)
    with pytest.raises(mtrain.RunFolderError, match="precision 'bf16' here.*precision 'off'"):
        mtrain.train(tiny_config(tmp_path, amp="bf16"), resume=True, log=lambda *a: None)
    resumed = mtrain.train(tiny_config(tmp_path, amp="off"), resume=True, log=lambda *a: None)
    assert resumed["amp"] == "off"  # "auto" on the CPU and "off" are the same precision


@needs_data
def test_a_start_from_scratch_refuses_a_folder_that_holds_a_run(tmp_path):
    mtrain.train(tiny_config(tmp_path, stop_after_steps=6), log=lambda *a: None)  # one epoch
    run = tmp_path / "tiny"
    before = {f.name: f.read_bytes() for f in run.iterdir()}
    assert set(before) == {"checkpoint.pt", "metrics.jsonl"}
    with pytest.raises(mtrain.RunFolderError, match=r"holds a run \(checkpoint.pt, metrics.jsonl\): "
                                                   r"resume it \(--resume\)"):
        mtrain.train(tiny_config(tmp_path), log=lambda *a: None)
    (run / "checkpoint.pt").unlink()  # a resume has nothing to continue from: not offered
    with pytest.raises(mtrain.RunFolderError, match=r"\(metrics.jsonl\): start a new one"):
        mtrain.train(tiny_config(tmp_path), resume=True, log=lambda *a: None)
    assert {f.name: f.read_bytes() for f in run.iterdir()} == {"metrics.jsonl": before["metrics.jsonl"]}
    # a finished run is neither restarted nor "resumed" (which would only rewrite its record)
    mtrain.train(tiny_config(tmp_path, run="done", epochs=1), log=lambda *a: None)
    record = (tmp_path / "done" / "result.json").read_bytes()
    for resume in (False, True):
        with pytest.raises(mtrain.RunFolderError, match="holds a finished run"):
            mtrain.train(tiny_config(tmp_path, run="done", epochs=1), resume=resume, log=lambda *a: None)
    assert (tmp_path / "done" / "result.json").read_bytes() == record


def test_training_inputs_get_cutout_and_test_inputs_do_not():
    images = torch.full((64, 3, 16, 16), 200, dtype=torch.uint8)
    spec = mdata.DATASETS["cifar10"]
    g = torch.Generator().manual_seed(0)
    train_x = mtrain._prepare(images, spec, True, None, train=True, generator=g, padding=0, cutout=6)
    plain = mtrain._prepare(images, spec, True, None, train=False)
    cut = (train_x == 0).all(1)  # (N, H, W): pixels zero in every channel
    assert not (plain == 0).any() and cut.any(2).any(1).all()  # every training image has a hole
    assert cut.sum((1, 2)).max() == 36
    assert torch.equal(train_x[~cut[:, None].expand_as(train_x)], plain[~cut[:, None].expand_as(plain)])


def test_the_cli_reports_a_bad_value_as_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        mtrain.main(["--model", "dwconv_cifar", "--cutout", "-1"])
    assert stop.value.code == 2 and "cutout must be an int >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        mtrain.main(["--model", "dwconv_cifar", "--optimizer", "sgd", "--momentum", "1.5"])
    assert stop.value.code == 2 and "momentum must be a finite number in [0, 1), got 1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # larger than the image: before any data is read
        mtrain.main(["--model", "dwconv_imagenette", "--data", "imagenette", "--image-size", "128",
                     "--cutout", "129"])
    assert stop.value.code == 2 and "at most the 128-pixel side" in capsys.readouterr().err


def test_run_names_say_the_budget_precision_cutout_and_optimizer(tmp_path):
    assert tiny_config(tmp_path, run=None).run_name() == "dwconv_cifar-cifar10-s0-e2"
    assert tiny_config(tmp_path, run=None, cutout=12).run_name() == "dwconv_cifar-cifar10-s0-e2-cutout12"
    assert tiny_config(tmp_path, run=None, optimizer="sgd").run_name() == "dwconv_cifar-cifar10-s0-e2-sgd"
    assert (tiny_config(tmp_path, run=None, amp="bf16", cutout=8).run_name()
            == "dwconv_cifar-cifar10-s0-e2-bf16-cutout8")  # the names of the book's bf16 runs
    assert tiny_config(tmp_path, run=None, amp="off").run_name() == "dwconv_cifar-cifar10-s0-e2"
    assert tiny_config(tmp_path, cutout=12).run_name() == "tiny"  # a name given is kept


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("field,value", [("epochs", 0), ("checkpoint_every", 0), ("ema", 1.0), ("lr", 0.0),
                                         ("cutout", -1), ("cutout", 2.5), ("cutout", 33),
                                         ("data", "mnist"), ("optimizer", "adam"), ("momentum", 1.0),
                                         ("weight_decay", -0.1),
                                         # issue 23: accepted before, or failing later inside torch
                                         ("lr", NAN), ("lr", INF), ("weight_decay", NAN),
                                         ("weight_decay", INF), ("momentum", NAN), ("ema", NAN),
                                         ("label_smoothing", NAN), ("label_smoothing", -0.5),
                                         ("label_smoothing", 2.0), ("warmup_epochs", -1.0),
                                         ("warmup_epochs", NAN), ("warmup_epochs", INF),
                                         ("stop_after_steps", 0), ("stop_after_steps", -1),
                                         ("max_train_images", 0), ("max_train_images", -5),
                                         ("image_size", 0), ("image_size", -5), ("padding", -1),
                                         ("padding", 32), ("seed", -1), ("device", "foo"),
                                         ("run", ".."), ("run", "a/b"), ("run", ""), ("amp", "fp8"),
                                         # a string flag is truthy: "False" turned TTA on
                                         ("tta", "False"), ("channels_last", 1), ("compile", "no"),
                                         ("quick", "0"), ("model_kwargs", None)])
def test_bad_config_names_the_field(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(tmp_path, **{field: value})


def _weights(path):
    return torch.load(path, weights_only=False)["model"]


def _same_weights(a, b):
    return all(torch.equal(a[key], b[key]) for key in a)


@needs_data
def test_a_metrics_line_lost_after_the_checkpoint_is_written_again_on_resume(tmp_path):
    # a kill between the end-of-epoch checkpoint and the append loses epoch 1's line: here
    # the line is taken away, or half of it is left, as a kill during the write would
    for damage in ("lost", "half"):
        mtrain.train(tiny_config(tmp_path, run=damage, stop_after_steps=6), log=lambda *a: None)
        metrics = tmp_path / damage / "metrics.jsonl"
        line = metrics.read_text()
        metrics.write_text("" if damage == "lost" else line[: len(line) // 2])
        resumed = mtrain.train(tiny_config(tmp_path, run=damage), resume=True, log=lambda *a: None)
        lines = [json.loads(x) for x in metrics.read_text().splitlines()]
        assert lines == resumed["history"] and [x["epoch"] for x in lines] == [1, 2]


def _hold(folder):
    """A process that holds the run folder's lock until it is killed."""
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@needs_data
def test_a_second_run_into_a_held_folder_is_refused_until_the_holder_dies(tmp_path):
    (tmp_path / "tiny").mkdir()
    holder = _hold(tmp_path / "tiny")
    try:
        for resume in (False, True):
            with pytest.raises(mtrain.RunFolderError, match="tiny is in use: another process"):
                mtrain.train(tiny_config(tmp_path, stop_after_steps=1), resume=resume, log=lambda *a: None)
        assert list((tmp_path / "tiny").iterdir()) == []  # nothing written
    finally:
        holder.kill()  # SIGKILL: no clean-up ran, the kernel released the lock
        holder.wait()
    done = mtrain.train(tiny_config(tmp_path, stop_after_steps=1), log=lambda *a: None)
    assert done == {"stopped_at_step": 1}


@needs_data
@pytest.mark.parametrize("field,value", [("lr", 1e-3), ("weight_decay", 0.01), ("label_smoothing", 0.0),
                                         ("ema", 0.99), ("warmup_epochs", 1.0), ("tta", False),
                                         ("channels_last", False), ("momentum", 0.8)])
def test_resume_refuses_a_changed_recipe(tmp_path, field, value):
    # before, the new value was taken and result.json recorded it as if the whole run used it
    mtrain.train(tiny_config(tmp_path, stop_after_steps=3), log=lambda *a: None)
    before = (tmp_path / "tiny" / "checkpoint.pt").read_bytes()
    with pytest.raises(mtrain.RunFolderError, match=f"--resume with {field}={value!r}, but"):
        mtrain.train(tiny_config(tmp_path, **{field: value}), resume=True, log=lambda *a: None)
    assert (tmp_path / "tiny" / "checkpoint.pt").read_bytes() == before


@needs_data
def test_an_older_checkpoint_without_the_new_fields_resumes_with_their_defaults(tmp_path):
    mtrain.train(tiny_config(tmp_path, stop_after_steps=3, warmup_epochs=1.0), log=lambda *a: None)
    path = tmp_path / "tiny" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    del state["checksum"], state["config"]["warmup_epochs"], state["config"]["tta"]
    del state["train_images"], state["device_type"]
    torch.save(state, path)
    resumed = mtrain.train(tiny_config(tmp_path, warmup_epochs=1.0), resume=True, log=lambda *a: None)
    assert resumed["steps"] == 12


@needs_data
@pytest.mark.parametrize("key, value, said", [
    # MIXLIB_QUICK comes from the environment: resumed without it, the run would go on through
    # the full set's order from the quick set's position
    ("train_images", 50000, "--resume with 400 training images, but the checkpoint in .* was "
                            "made with 50000"),
    # an older checkpoint without the count: the length of its epoch's order says it
    ("epoch_order", torch.arange(50000), "made with 50000"),
    ("device_type", "cuda", r"--resume on device='cpu' \(cpu\), but the checkpoint in .* was "
                            "trained on cuda")])
def test_resume_refuses_another_training_set_or_device(tmp_path, key, value, said):
    mtrain.train(tiny_config(tmp_path, stop_after_steps=3), log=lambda *a: None)
    path = tmp_path / "tiny" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    del state["checksum"]
    if key == "epoch_order":
        del state["train_images"]
    state[key] = value
    torch.save(state, path)
    with pytest.raises(mtrain.RunFolderError, match=said):
        mtrain.train(tiny_config(tmp_path), resume=True, log=lambda *a: None)


@needs_data
@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "flipped"])
def test_a_damaged_checkpoint_is_an_error_that_names_it(tmp_path, damage):
    mtrain.train(tiny_config(tmp_path, stop_after_steps=3), log=lambda *a: None)
    path = tmp_path / "tiny" / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    if damage == "flipped":  # one byte of a weight, in the file as it is stored
        weight = next(t for t in _weights(path).values() if t.dim() == 1 and t.numel() >= 16)
        at = data.index(weight.numpy().tobytes()[:64]) + 13
        data[at] ^= 0x01
    else:
        data = {"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"x" * 1000}[damage]
    path.write_bytes(bytes(data))
    said = "does not match the checksum" if damage == "flipped" else "cannot be read"
    with pytest.raises(mtrain.CheckpointError, match=f"{path} (is damaged: its content )?{said}"):
        mtrain.train(tiny_config(tmp_path), resume=True, log=lambda *a: None)
    with pytest.raises(mtrain.CheckpointError, match=str(path)):
        mtrain.evaluate_checkpoint(tmp_path / "tiny")


@needs_data
def test_weights_that_are_not_finite_are_never_saved(tmp_path, monkeypatch):
    # a finite loss does not prove finite weights: the moving average is not in the loss
    real = mtrain.EMA.update

    def poisoned(self, model, step):
        real(self, model, step)
        if step == 1:
            next(self.model.parameters()).data.fill_(float("nan"))

    monkeypatch.setattr(mtrain.EMA, "update", poisoned)
    with pytest.raises(mtrain.NonFiniteLoss, match=r"not finite at step 4 \(ema\..*not saved; no "
                                                   r"checkpoint was written before it"):
        mtrain.train(tiny_config(tmp_path), log=lambda *a: None)
    assert not (tmp_path / "tiny" / "checkpoint.pt").exists()
    diverged = json.loads((tmp_path / "tiny" / "diverged.json").read_text())
    assert (diverged["diverged"]["step"], diverged["history"]) == (4, [])


@needs_data
def test_weights_found_not_finite_at_an_epochs_end_leave_that_epoch_out_of_the_record(tmp_path,
                                                                                    monkeypatch):
    # the epoch's evaluation (of the non-finite weights) comes before the check at its end
    real = mtrain.EMA.update

    def poisoned(self, model, step):
        real(self, model, step)
        if step == 4:  # after the check at step 4, before the epoch's end at step 6
            next(self.model.parameters()).data.fill_(float("nan"))

    monkeypatch.setattr(mtrain.EMA, "update", poisoned)
    with pytest.raises(mtrain.NonFiniteLoss, match=r"not finite at step 6 \(ema\."):
        mtrain.train(tiny_config(tmp_path), log=lambda *a: None)
    diverged = json.loads((tmp_path / "tiny" / "diverged.json").read_text())
    assert (diverged["diverged"]["step"], diverged["diverged"]["epoch"]) == (6, 1)
    assert diverged["history"] == []  # epoch 1's accuracy was that of non-finite weights
    assert not (tmp_path / "tiny" / "metrics.jsonl").exists()  # nor did its line get written


@needs_data
def test_sigterm_stops_at_the_next_step_with_a_checkpoint_and_the_resume_is_exact(tmp_path, monkeypatch, capsys):
    import signal
    mtrain.train(tiny_config(tmp_path / "a"), log=lambda *a: None)
    real, calls = mtrain.F.cross_entropy, {"n": 0}

    def terminated(*args, **kwargs):  # a SIGTERM arrives during step 8 (epoch 2)
        calls["n"] += 1
        if calls["n"] == 8:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(mtrain.F, "cross_entropy", terminated)
    argv = ["--model", "dwconv_cifar", "--width", "8", "--epochs", "2", "--batch-size", "64",
            "--lr", "3e-3", "--warmup-epochs", "0.5", "--checkpoint-every", "4", "--log-every", "4",
            "--device", "cpu", "--out", str(tmp_path / "b"), "--name", "tiny"]
    monkeypatch.setenv("MIXLIB_QUICK", "1")
    assert mtrain.main(argv) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM at step 8" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again
    run = tmp_path / "b" / "tiny"
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 8
    assert not list(run.glob(".*.part"))
    monkeypatch.setattr(mtrain.F, "cross_entropy", real)
    assert mtrain.main(argv + ["--resume"]) == 0
    assert _same_weights(_weights(tmp_path / "a" / "tiny" / "checkpoint.pt"), _weights(run / "checkpoint.pt"))


@needs_data
def test_stale_temporary_files_in_the_run_folder_are_removed(tmp_path):
    mtrain.train(tiny_config(tmp_path, stop_after_steps=3), log=lambda *a: None)
    stale = tmp_path / "tiny" / f".checkpoint.pt.{os.getpid()}.0123abcd.part"  # a killed write
    stale.write_bytes(b"x" * 1000)
    mtrain.train(tiny_config(tmp_path, stop_after_steps=4), resume=True, log=lambda *a: None)
    assert not stale.exists()


@needs_data
def test_a_run_folder_that_cannot_be_written_is_refused_before_training(tmp_path, monkeypatch):
    def refused(*args, **kwargs):  # as on a read-only folder (root writes anywhere, so faked)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(mtrain.tempfile, "TemporaryFile", refused)
    monkeypatch.setattr(mtrain.mdata, "load", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(mtrain.SettingError, match=r"tiny cannot be written \(Permission denied\)"):
        mtrain.train(tiny_config(tmp_path), log=lambda *a: None)
    assert not (tmp_path / "tiny").exists()  # the folder it made is gone again


@needs_data
def test_a_full_disk_is_named(tmp_path, monkeypatch, capsys):
    from mixlib import files
    real_open = open

    def full(path, mode="r", *args, **kwargs):  # every checkpoint lands on /dev/full
        return real_open("/dev/full", mode, *args, **kwargs) if "w" in mode else real_open(path, mode)

    monkeypatch.setattr(files, "open", full, raising=False)
    with pytest.raises(files.DiskFullError, match=r"no space left on the device to write .*tiny/checkpoint.pt"):
        mtrain.train(tiny_config(tmp_path), log=lambda *a: None)
    assert not (tmp_path / "tiny").exists()  # no temporary file left (the folder was empty)


@needs_data
def test_settings_the_data_or_machine_cannot_meet_are_usage_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MIXLIB_QUICK", "1")
    base = ["--model", "dwconv_cifar", "--width", "4", "--device", "cpu", "--out", str(tmp_path)]
    for extra, said in ((["--batch-size", "1000"], "batch_size=1000 is larger than the 400"),
                        (["--max-train-images", "401"], "max_train_images=401 is more than the 400"),
                        (["--device", "cuda:99"], "device='cuda:99' is not available"),
                        # a paper preset has no width: before, a TypeError's traceback
                        (["--model", "convnext_t"], "model='convnext_t' does not take {'width': 4}")):
        assert mtrain.main(base + extra) == 2
        assert said in capsys.readouterr().err.split("error:", 1)[1]
    assert list(tmp_path.iterdir()) == []  # no run folder left behind
    with pytest.raises(SystemExit):
        mtrain.main(base + ["--width", "0"])  # before: 0 meant the preset's default width
    assert "width must be an int >= 1, got 0" in capsys.readouterr().err


@needs_data
def test_the_training_steps_read_the_device_only_when_they_settle(tmp_path):
    """Host reads (item, tolist, int/float/bool of a tensor) wait for the device to finish: on a
    GPU each one stalls the queue of kernels. The loop itself makes none; `settle` reads the
    steps since its last call in one transfer, every `log_every` steps and before each
    checkpoint and evaluation. Counted by the function in train.py whose own line asked."""
    import sys
    from torch.overrides import TorchFunctionMode
    reads = {"item", "tolist", "__int__", "__float__", "__bool__"}

    class CountReads(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.by_function = {}

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in reads:
                frame = sys._getframe(1)  # the line that asked (library code below it is not
                # counted: the CPU's AdamW reads its step counts, the GPU's fused one does not)
                if frame.f_code.co_filename.endswith("mixlib/train.py"):
                    name = frame.f_code.co_name
                    self.by_function[name] = self.by_function.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    with CountReads() as counter:
        result = mtrain.train(tiny_config(tmp_path, log_every=5, checkpoint_every=100),
                              log=lambda *a: None)
    steps = result["steps"]
    assert steps >= 10
    assert counter.by_function.get("_train", 0) == 0, counter.by_function
    # one read per call: at the log points (every 5 steps) and at each epoch's end
    assert 0 < counter.by_function["settle"] <= steps // 5 + 2, counter.by_function


def _bn_net_and_data(n=64):
    """A net whose BatchNorm running statistics are wrong on purpose, and data to score it on."""
    torch.manual_seed(0)
    spec = mdata.DATASETS["cifar10"]
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,))
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))
    bn = net[1]
    bn.running_mean.fill_(50.0)  # far from the features' true mean
    return net, bn, mdata.ImageData(images, labels, spec, "test")


def test_evaluate_with_batch_statistics_leaves_the_running_ones_untouched():
    net, bn, data = _bn_net_and_data()
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    kwargs = dict(batch_size=16, device=torch.device("cpu"), tta=False, channels_last=False)
    mtrain.evaluate(net, data, batch_statistics=True, **kwargs)
    for key, value in bn.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not bn.training and not net.training
    # the two modes normalise differently: on one batch, batch statistics give other logits
    x = mtrain._prepare(data.images[:16], data.spec, False, None, train=False)
    with torch.no_grad():
        running = net(x)
        bn.train(); per_batch = net(x); bn.eval()
    assert not torch.allclose(running, per_batch)


def test_recompute_batch_norm_gives_the_plain_average_of_one_pass():
    net, bn, data = _bn_net_and_data()
    bn.momentum = 0.3
    mtrain.recompute_batch_norm(net, data, batch_size=16, device=torch.device("cpu"))
    x = mtrain._prepare(data.images, data.spec, False, None, train=False)
    with torch.no_grad():
        features = net[0](x)  # the conv's output, what the BatchNorm sees
    batch_means = torch.stack([f.mean((0, 2, 3)) for f in features.split(16)])
    torch.testing.assert_close(bn.running_mean, batch_means.mean(0), rtol=1e-5, atol=1e-5)
    assert bn.momentum == 0.3 and not net.training
    with pytest.raises(ValueError, match="no BatchNorm"):
        mtrain.recompute_batch_norm(torch.nn.Linear(3, 3), data, batch_size=16, device=torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs are a GPU matter")
def test_training_steps_wait_for_the_gpu_only_when_settling(tmp_path):
    """On a GPU the loop reads the device only in settle() (every log_every steps) and around
    checkpoints and evaluations, not in the steps themselves (issue 19: it used to sync 4-5
    times a step). Each synchronising call is attributed to the mixlib function it came from."""
    import traceback
    import warnings

    where = []  # per synchronising call, the mixlib functions on the stack, innermost last

    def record(message, *args, **kwargs):
        if "synchroniz" in str(message):
            where.append([f.name for f in traceback.extract_stack() if "mixlib" in f.filename])

    steps, log_every = 16, 8
    config = tiny_config(tmp_path, device="cuda", epochs=1, max_train_images=steps * 32,
                         batch_size=32, log_every=log_every, checkpoint_every=10 ** 6)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            mtrain.train(config, log=lambda *_: None)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    # settle() (one transfer every log_every steps), evaluations and checkpoints may read the
    # device; a read in every step would come to at least `steps` calls from elsewhere
    allowed = {"settle", "evaluate", "checkpoint"}
    elsewhere = [names for names in where if not allowed.intersection(names)]
    assert len(elsewhere) < steps, elsewhere


# /proc/self/autogroup reads empty for a process in the kernel's default group: one whose session
# began before any setsid (init's own, as in a container or a CI runner, where /proc/1/autogroup
# is empty too). That group is the root task group, whose share cannot be set. A new session
# (setsid) always gets an autogroup of its own.
IN_THE_ROOT_GROUP = "this process's session is in the kernel's default (root) group"


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(),
                    reason="the kernel schedules without autogroups")
def test_a_niced_run_in_a_session_of_its_own_gives_the_session_its_niceness():
    """As mixlib.sweep starts a training: `nice` and a new session, whose autogroup starts at 0."""
    niceness = min(os.nice(0) + 7, 19)  # `nice -n 7` adds to this process's own
    code = ("from mixlib.train import nice_across_sessions as f; n = f(); "
            "print(n, open('/proc/self/autogroup').read().split()[-1])")
    done = subprocess.run(["nice", "-n", "7", sys.executable, "-c", code],
                          capture_output=True, text=True, start_new_session=True, check=True)
    assert done.stdout.split() == [str(niceness), str(niceness)]


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(),
                    reason="the kernel schedules without autogroups")
def test_a_niced_run_started_from_a_shell_leaves_the_shells_session_alone():
    """Started without a session of its own (from a person's shell), a niced training must not
    lower the whole session's priority: the setting would outlive it."""
    own = Path("/proc/self/autogroup")
    before = own.read_text()
    if not before.strip():
        pytest.skip(IN_THE_ROOT_GROUP)
    code = "from mixlib.train import nice_across_sessions as f; f()"
    try:
        subprocess.run(["nice", "-n", "7", sys.executable, "-c", code], check=True)
        assert own.read_text() == before
    finally:
        own.write_text(before.split()[-1])  # this session's niceness, whatever happened


def test_a_missing_data_archive_is_a_usage_error_that_names_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "data" / "cifar10-jpg").mkdir(parents=True)  # a data folder without archives
    monkeypatch.setenv("MIXLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MIXLIB_QUICK", "1")
    out = tmp_path / "runs"
    assert mtrain.main(["--model", "dwconv_cifar", "--width", "4", "--device", "cpu",
                        "--out", str(out)]) == 2  # before: a FileNotFoundError's traceback
    said = capsys.readouterr().err
    assert "error: data='cifar10': cifar10 train archive not found" in said, said
    assert not out.exists() or not any(out.iterdir())  # no run folder left behind
