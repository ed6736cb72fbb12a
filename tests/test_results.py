"""mixlib.results: reading runs back, and the per-model summary the book prints."""
import json
import math

import pytest

from mixlib import results


def write_run(folder, model, seed, acc, *, epochs=2, images=100, image_size=None):
    run = folder / f"{model}-s{seed}"
    run.mkdir(parents=True)
    record = {"model": model, "dataset": "cifar10", "seed": seed, "epochs": epochs,
              "train_images": images, "test_acc": acc, "train_time_s": 10.0 + seed,
              "params": 1000, "hardware": {"threads": 1}, "commit": "abc",
              "config": {"image_size": image_size}}
    (run / "result.json").write_text(json.dumps(record))


def test_summary_per_model_over_seeds(tmp_path):
    write_run(tmp_path, "a_cifar", 0, 0.50)
    write_run(tmp_path, "a_cifar", 1, 0.54)
    write_run(tmp_path, "b_cifar", 0, 0.60)
    (tmp_path / "unfinished").mkdir()  # a run without result.json is not read
    runs = results.load_runs(tmp_path)
    assert [(r["model"], r["seed"]) for r in runs] == [("a_cifar", 0), ("a_cifar", 1), ("b_cifar", 0)]
    rows = results.summarize(runs)
    assert [r["model"] for r in rows] == ["b_cifar", "a_cifar"]  # best first
    a = rows[1]
    assert a["seeds"] == [0, 1] and a["mean_acc"] == pytest.approx(0.52)
    assert (a["min_acc"], a["max_acc"]) == (0.50, 0.54)
    assert a["std_acc"] == pytest.approx(0.02 * math.sqrt(2))
    assert math.isnan(rows[0]["std_acc"])  # one seed: no spread to report
    assert a["mean_train_time_s"] == pytest.approx(10.5)
    assert a["image_size"] is None  # the data set's own size


def test_runs_at_another_image_size_are_another_budget(tmp_path):
    write_run(tmp_path, "a_imagenette", 0, 0.5, image_size=128)
    write_run(tmp_path, "a_imagenette", 1, 0.6, image_size=128)
    assert results.summarize(results.load_runs(tmp_path))[0]["image_size"] == 128
    write_run(tmp_path, "a_imagenette", 2, 0.6, image_size=160)
    with pytest.raises(ValueError, match="different budgets"):
        results.summarize(results.load_runs(tmp_path))


def test_runs_with_different_budgets_are_not_averaged(tmp_path):
    write_run(tmp_path, "a_cifar", 0, 0.5, epochs=2)
    write_run(tmp_path, "a_cifar", 1, 0.6, epochs=3)
    with pytest.raises(ValueError, match="different budgets"):
        results.summarize(results.load_runs(tmp_path))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        results.load_runs(tmp_path / "nowhere")


def test_mixer_of_a_preset():
    assert results.mixer_of("neighborhood_attention_cifar") == "neighborhood_attention"
    assert results.mixer_of("cctt_imagenette") == "cctt"
    assert results.mixer_of("convnext_t") == "convnext_t"


def test_epoch_times_and_the_first_epoch_past_a_goal():
    history = [{"epoch": 1, "test_acc": 0.50, "train_time_s": 100.0},
               {"epoch": 2, "test_acc": 0.91, "train_time_s": 350.0},   # a disturbed epoch
               {"epoch": 3, "test_acc": 0.93, "train_time_s": 450.0}]
    assert results.epoch_seconds(history) == [100.0, 250.0, 100.0]
    assert results.first_reaching(history, 0.9)["epoch"] == 2
    assert results.first_reaching(history, 0.95) is None
    with pytest.raises(ValueError, match="accuracy"):
        results.first_reaching(history, 90)  # a percentage, not a fraction
