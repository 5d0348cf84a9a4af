"""A small-scale version of the paper's protocol that finishes in minutes on a 2-core CPU.

Same code path as the paper (paper split rule scaled to the data set's size, the same
augmentation, SGD and peak selection), with fewer images, smaller images and few epochs:
    python -m alexnet_jax.data prepare --dataset=synthetic --num_examples=1200 --output=data/synthetic_quick
    python -m alexnet_jax.train --config=alexnet_jax/configs/quick.py \
        --data_dir=data/synthetic_quick --workdir=runs/quick --runs=0-1

`quick.py:MODEL` shrinks a backbone's config (configs/backbones.py:MODEL, e.g. efficientnet_lite0)
the same way: its recipe's optimiser, its model options and the input scaling of its weights,
at the sizes and epochs below, with the recipe's learning rate scaled linearly to the batch of 64;
BACKBONE_OVERRIDES holds what a backbone's quick run sets otherwise (the main job's among them).

EfficientNet-Lite0 (the main job's second study) trains with the paper's optimiser instead of its
recipe's: on 1,710 real SDSS galaxies (GZ2 spiral or not, 64 px crops, pretrained arm, run 0,
2026-12-04) RMSProp at the recipe's rate scaled to batch 64 (0.004, no warmup) peaked at 68.3 %
in epoch 1 and fell to 50.3 % (chance) by epoch 3, while SGD at 0.01 (momentum 0.9, the quick
AlexNet's) rose steadily to 73.8 %. BatchNorm's momentum is PyTorch's 0.1 (timm's module default):
at the weights' 0.01 the running statistics would still be mostly ImageNet's after these ~50-100
steps, and evaluation uses them. Both arms get 2 epochs here (the real-galaxy figures above are
from 3): the pretrained arm learns in its first, as in the paper, and 2 epochs of 3 runs of both
arms keep the whole main job within 10 minutes on a 2-core CPU.
"""

from alexnet_jax import configs
from alexnet_jax.configs import backbones, paper

VARIANTS = ("", *backbones.VARIANTS)  # --config=alexnet_jax/configs/quick.py[:MODEL]
SIZES = {
    "data.dir": "data/synthetic_quick",
    "data.image_size": 72,  # resized once from the prepared 256 px
    "augment.crop_size": 64,  # AlexNet's minimum input is 63 px
    "batch_size": 64,
    "eval_batch_size": 128,
    "epochs.pretrained": 4,
    "epochs.scratch": 8,
}
PAPER_LEARNING_RATE = 0.01  # few epochs: a larger step than the paper's 0.001
# Per backbone, dotted config keys set after SIZES and the scaled recipe (tune them here).
BACKBONE_OVERRIDES = {
    "efficientnet_lite0": {  # ./run.sh's main job (see the docstring for the measurements behind these)
        "optim.name": "sgd",
        "optim.learning_rate": PAPER_LEARNING_RATE,
        "optim.weight_decay": 0.0,
        "model.bn_momentum": 0.1,
        "epochs.pretrained": 2,
        "epochs.scratch": 2,
    },
}


def get_config(model: str | None = None):
    if model and model not in backbones.VARIANTS:
        raise ValueError(f"quick.py:{model}: name a backbone of configs/backbones.py, one of {', '.join(VARIANTS[1:])}")
    if model and model != "alexnet":
        config = backbones.get_config(model)
        overrides = {**SIZES, "optim.learning_rate": backbones.recipe_learning_rate(model, SIZES["batch_size"])}
        overrides |= BACKBONE_OVERRIDES.get(model, {})
    else:
        config = paper.get_config()
        overrides = {**SIZES, "optim.learning_rate": PAPER_LEARNING_RATE}
    return configs.override(config, overrides)
