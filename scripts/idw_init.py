"""I-D-DW at initialisation, seed by seed (chapter 8, issue 19).

`idwconv_cifar`'s seed 1 sat at chance for two epochs and `idwconv_imagenette`'s seed 0 for
nearly all ten. This probe builds each protocol seed's network as `mixlib.train` builds it
(`torch.manual_seed(seed)`, then the preset at the run's image size), untrained, and measures
in every I-D-DW block, on 256 test images in training mode (batch statistics, as the first
steps see them), with `models.mixer_gains`:

- `spread`: how far each image's generated weights are from the batch's average, relative to
  that average (the root mean square of each), as chapter 8's cell measures it;
- `gain`: the root mean square of the mixer's output over that of its input (the block's
  normalised map), how much larger than its input each I-D-DW makes its branch.

The same gain is measured for the 7×7 DW conv's presets, the static mixer I-D-DW is compared
with, for scale.

It writes results/runs/idw-init/init.json with its provenance. It trains nothing (seconds).

    python scripts/idw_init.py
"""
import json
from pathlib import Path

import torch

from mixlib import data as mdata, models, protocol
from mixlib.files import atomic_write
from mixlib.mixers import DWConv, InhomogeneousDWConv
from mixlib.provenance import code_commit, environment
from mixlib.train import TrainConfig, _build_model, _prepare

PRESETS = (("idwconv_cifar", "cifar10", None), ("idwconv_imagenette", "imagenette",
                                                protocol.IMAGENETTE_SIZE),
           # the static 7×7 DW conv's branch, for scale (its weights have no spread)
           ("dwconv_cifar", "cifar10", None), ("dwconv_imagenette", "imagenette",
                                                protocol.IMAGENETTE_SIZE))
IMAGES = 256
OUT = Path("results/runs/idw-init/init.json")


def main() -> None:
    commit = code_commit()
    torch.set_num_threads(1)
    record = {"images": IMAGES, "sample_seed": 0, "commit": commit,
              "hardware": environment(torch.device("cpu")), "presets": {}}
    for name, data, size in PRESETS:
        test = mdata.load(data, "test").sample(IMAGES, seed=0)
        # normalised, and resized for a 128 px run, as train.py prepares a test batch
        x = _prepare(test.images, test.spec, False, size, train=False)
        seeds = {}
        for seed in protocol.SEEDS:
            torch.manual_seed(seed)  # as train.py seeds before it builds the model
            config = TrainConfig(model=name, data=data, seed=seed, image_size=size)
            net = _build_model(config, len(test.spec.classes), torch.device("cpu"))
            seeds[str(seed)] = models.mixer_gains(net.train(), x, (InhomogeneousDWConv, DWConv))
            print(name, seed, " ".join(f"{r['gain']:.2f}" for r in seeds[str(seed)]), flush=True)
        record["presets"][name] = {"data": data, "image_size": size, "seeds": seeds}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(OUT, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))


if __name__ == "__main__":
    main()
