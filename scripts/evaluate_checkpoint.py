"""Test accuracy of finished runs' checkpoints with the moving average of the weights (what the
runs report) and with the weights themselves; each run's numbers go to its
``checkpoint_eval.json``.

    python scripts/evaluate_checkpoint.py results/runs/denseconv_cifar-cifar10-s0-e16 [...]
"""
import argparse
import json
from pathlib import Path

from mixlib import data as mdata
from mixlib.train import evaluate_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding checkpoint.pt")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for run in args.runs:
        record = evaluate_checkpoint(run, device=args.device)
        mdata.atomic_write(run / "checkpoint_eval.json",
                           lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
        print(json.dumps({k: record[k] for k in ("run", "step", "test_acc_ema", "test_acc_weights")}))


if __name__ == "__main__":
    main()
