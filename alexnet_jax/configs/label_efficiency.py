"""How many labels does pretraining save? Every arm trained on nested subsets of the training split.

The paper's AlexNet protocol at 100, 300, 1,000, 3,000 and all 12,000 labels, 5 repeats (25 runs):
    python -m alexnet_jax.study --config=alexnet_jax/configs/label_efficiency.py \
        --data_dir=data/nair_abraham --workdir=runs/label_efficiency --runs=0-24
    python -m alexnet_jax.analyze --workdir=runs/label_efficiency
EfficientNet-Lite0 from its ImageNet weights, from scratch, and as a linear probe:
    python -m alexnet_jax.convert --model=efficientnet_lite0
    python -m alexnet_jax.study --config=alexnet_jax/configs/label_efficiency.py:initialisations \
        --data_dir=data/nair_abraham --workdir=runs/label_efficiency_lite0 --runs=0-24
The quick variant, within 10 minutes on a 2-core CPU (3 sizes x 2 repeats x 2 arms; AlexNet's
ImageNet weights converted first, `python -m alexnet_jax.convert`):
    python -m alexnet_jax.data prepare --dataset=synthetic --num_examples=1200 --output=data/synthetic_quick
    python -m alexnet_jax.train --config=alexnet_jax/configs/label_efficiency.py:quick \
        --data_dir=data/synthetic_quick --workdir=runs/label_efficiency_quick --runs=0-5
    python -m alexnet_jax.analyze --workdir=runs/label_efficiency_quick
`initialisations_quick` is Lite0 at quick.py's CPU sizes (configs/quick.py:efficientnet_lite0), for
real galaxies on a CPU, e.g. ../shared/data/gz2_kaggle_subset prepared as a folder per class.

Run r is size r % S of repeat r // S (S sizes): runs 0..S-1 are the first repeat's whole curve,
so --runs=0-(S*R-1) is the study and any prefix of whole repeats is a smaller one. A repeat's
pool and test set are what the data's split rule gives run `repeat` of an ordinary study; each
size takes a prefix of the repeat's seeded, class-stratified nested order (every class keeps at
least min_per_class; the 100 are inside the 300), and the test set is the same for every size
and arm of a repeat. Model selection uses a validation split carved from each subset (10 %);
--config.selection=test is the paper's peek at the test set, by name.

The budget: equal_epochs trains every size config.epochs[arm] epochs (few optimizer steps for a
small subset); --config.label_efficiency.budget=equal_steps trains every size the steps the whole
pool gets in config.epochs[arm] epochs (or --config.label_efficiency.steps), in whole epochs of
its own subset, never fewer than min_epochs. Sizes, repeats and the floor are set the same way:
    --config.label_efficiency.train_sizes=200,1000,all --config.label_efficiency.repeats=3
"""

import ml_collections

from alexnet_jax import configs
from alexnet_jax.configs import backbones, paper, quick

VARIANTS = ("", "initialisations", "quick", "initialisations_quick")
LITE0 = "efficientnet_lite0"


def section(train_sizes: str, repeats: int, min_per_class: int = 5) -> ml_collections.ConfigDict:
    """config.label_efficiency (read by alexnet_jax.training.label_budget)."""
    return ml_collections.ConfigDict(
        {
            "train_sizes": train_sizes,  # increasing whole numbers; "all": the whole training pool
            "repeats": repeats,  # >= 2: a confidence interval needs two
            "min_per_class": min_per_class,  # the floor of examples per class in every subset
            "budget": "equal_epochs",  # or "equal_steps"
            "steps": 0,  # equal_steps: optimizer steps per arm; 0: the whole pool's at config.epochs[arm]
            "min_epochs": 1,  # equal_steps: never fewer epochs than this
        }
    )


def get_config(variant: str | None = None):
    if variant not in (None, *VARIANTS):
        raise ValueError(f"label_efficiency.py:{variant}: the variants are the default (AlexNet, the paper's "
                         f"protocol), {', '.join(VARIANTS[1:])}")  # fmt: skip
    if variant == "quick":
        config = quick.get_config()
        config.label_efficiency = section("50,200,all", repeats=2)
    elif variant == "initialisations_quick":
        config = quick.get_config(LITE0)
        config.label_efficiency = section("100,300,all", repeats=3)
    else:
        config = backbones.get_config(LITE0) if variant == "initialisations" else paper.get_config()
        config.label_efficiency = section("100,300,1000,3000,all", repeats=5)
    if variant in ("initialisations", "initialisations_quick"):
        config.arms.linear_probe = configs.arm("imagenet", "linear_probe")  # --arms=pretrained,scratch leaves it out
        if config.optim.name == "sgd":  # a linear probe's larger step, as initialisations.py (RMSProp: the recipe's)
            config.arms.linear_probe.optim.learning_rate = 10 * config.optim.learning_rate
        config.epochs.linear_probe = config.epochs.pretrained if variant == "initialisations_quick" else 50
    config.selection = "val"  # this study does not peek at the test set
    config.data.val_fraction = 0.1
    return config
