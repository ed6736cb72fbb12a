"""Run by test_train under torchrun: rank 1's loss becomes NaN at its third step, rank 0's
stays finite; both processes must stop with NonFiniteLoss instead of waiting for each other.
The launcher stops every process as soon as one fails, so rank 1 waits (up to a minute) for
rank 0 to leave a mark that it stopped by itself before it exits."""
import os
import sys
import time
from pathlib import Path

from mixlib import train as mtrain

real = mtrain.F.cross_entropy
calls = {"n": 0}


def poisoned(*args, **kwargs):
    calls["n"] += 1
    loss = real(*args, **kwargs)
    return loss * float("nan") if os.environ["RANK"] == "1" and calls["n"] == 3 else loss


mtrain.F.cross_entropy = poisoned
code = mtrain.main(sys.argv[1:])
mark = Path(os.environ["DDP_NAN_MARK"])
if os.environ["RANK"] == "0":
    mark.touch()
else:
    deadline = time.monotonic() + 60
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
sys.exit(code)
