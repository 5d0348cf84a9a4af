"""Which start and which finetuning pay off? Four arms of one backbone on identical splits.

    python -m alexnet_jax.study --config=alexnet_jax/configs/initialisations.py \
        --data_dir=data/nair_abraham --workdir=runs/initialisations --runs=0-19
    python -m alexnet_jax.analyze --workdir=runs/initialisations
The quick variant, on the CPU in minutes (the synthetic galaxies; ImageNet weights converted):
    python -m alexnet_jax.data prepare --dataset=synthetic --num_examples=1200 --output=data/synthetic_quick
    python -m alexnet_jax.train --config=alexnet_jax/configs/initialisations.py:quick \
        --data_dir=data/synthetic_quick --workdir=runs/initialisations_quick --runs=0-2
    python -m alexnet_jax.analyze --workdir=runs/initialisations_quick

The arms (alexnet_jax.training.arms), each with the epochs a user would start from:
    scratch       torchvision's initialisation, every layer trains (the paper's scratch arm)
    imagenet      the converted ImageNet weights, every layer trains (the paper's pretrained arm)
    linear_probe  the ImageNet backbone frozen, only the new head trains: no backbone gradients,
                  no optimizer state for it; a larger learning rate, as linear probes use
    last_blocks   the ImageNet backbone's last 3 blocks (AlexNet: conv5, fc6, fc7) and the head train
A galaxy-pretrained encoder (a Zoobot model converted with `python -m alexnet_jax.convert
--hf_repo=...`) or another study's `best/` is one more arm, e.g.
    --config.arms.zoobot.init=checkpoint:weights/zoobot_resnet18 --config.epochs.zoobot=50
once its block is uncommented below (ml_collections does not add fields from the command line).
Every other value is the paper's protocol (alexnet_jax/configs/paper.py).
"""

from alexnet_jax import configs
from alexnet_jax.configs import paper, quick

VARIANTS = ("", "quick")  # the paper-scale default, or --config=alexnet_jax/configs/initialisations.py:quick


def get_config(variant: str | None = None):
    if variant not in (None, "", "quick"):
        raise ValueError(f"initialisations.py:{variant}: the variants are the default (paper scale) and 'quick'")
    config = quick.get_config() if variant == "quick" else paper.get_config()
    config.arms = {
        "scratch": configs.arm("scratch"),
        "imagenet": configs.arm("imagenet"),
        "linear_probe": configs.arm("imagenet", "linear_probe"),
        "last_blocks": configs.arm("imagenet", "last_blocks:3"),
        # "zoobot": configs.arm("checkpoint:weights/zoobot_resnet18"),  # needs config.model.name = "resnet18"
    }
    config.arms.linear_probe.optim.learning_rate = 10 * config.optim.learning_rate
    if variant == "quick":
        config.epochs = {"scratch": 8, "imagenet": 4, "linear_probe": 4, "last_blocks": 4}
    else:
        config.epochs = {"scratch": 400, "imagenet": 200, "linear_probe": 50, "last_blocks": 100}
    return config
