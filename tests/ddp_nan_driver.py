"""Run by test_train under torchrun: rank 1's loss becomes NaN at its third step, rank 0's
stays finite; both processes must stop with NonFiniteLoss instead of waiting for each other.
Rank 1 lingers before it exits, so that the launcher (which stops every process when one
fails) does not stop rank 0 before rank 0 has had the chance to stop by itself."""
import os
import sys
import time

from mixlib import train as mtrain

real = mtrain.F.cross_entropy
calls = {"n": 0}


def poisoned(*args, **kwargs):
    calls["n"] += 1
    loss = real(*args, **kwargs)
    return loss * float("nan") if os.environ["RANK"] == "1" and calls["n"] == 3 else loss


mtrain.F.cross_entropy = poisoned
code = mtrain.main(sys.argv[1:])
if os.environ["RANK"] == "1":
    time.sleep(3)
sys.exit(code)
