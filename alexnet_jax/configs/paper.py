"""The paper's protocol to the letter (Schneider, Stenning & Elliott 2023).

Run one split with both arms:
    python -m alexnet_jax.train --config=alexnet_jax/configs/paper.py \
        --data_dir=data/nair_abraham --workdir=runs/paper --run_index=0
The whole study (or spread it: see experiments/slurm/ and `python -m alexnet_jax.study`):
    python -m alexnet_jax.study --config=alexnet_jax/configs/paper.py \
        --data_dir=data/nair_abraham --workdir=runs/paper --runs=0-99

Switches for the points where the paper's practice is questionable; each defaults to what
the paper did:
    --config.eval_augment=center      evaluate on a deterministic centre crop (paper: random)
    --config.selection=val            pick the peak epoch on a validation split (paper: test)
    --config.data.val_fraction=0.1    size of that validation split, carved from training
    --config.normalize=weights        scale the inputs as the model's ImageNet weights expect
                                      (or none, imagenet, inception; paper: none, [0, 1] pixels)
    --config.data.shuffle_each_epoch=True  new order each epoch (paper: one fixed order,
                                      because DistributedSampler.set_epoch was never called)
"""

import ml_collections

from alexnet_jax import configs


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.dir = "data/synthetic"  # a prepared data set; --data_dir overrides
    config.data.image_size = 256  # the paper's resize
    # auto: "paper" (the original draw) for the paper's four classes, "declared" where the data set
    # keeps its source's split (e.g. train/ and validation/ folders), else "stratified" by class.
    config.data.split = "auto"
    # None: 12,000 / 2,034 for 14,034 images, scaled as round(N * 12000 / 14034) otherwise.
    config.data.train_size = ml_collections.FieldReference(None, field_type=int)
    config.data.val_fraction = 0.0
    config.data.shuffle_each_epoch = False

    config.augment = ml_collections.ConfigDict()
    config.augment.crop_size = 224
    config.augment.hflip = True
    config.augment.vflip = True
    config.augment.rotation_degrees = 180.0
    config.eval_augment = "random"  # "random" (paper) or "center"
    # The input scaling of every arm: none ([0, 1], the paper), imagenet (torchvision's mean/std),
    # inception ((x - 0.5) / 0.5) or weights (what the model's ImageNet weights were trained with).
    config.normalize = "none"

    config.model = ml_collections.ConfigDict()
    config.model.name = "alexnet"  # a name of alexnet_jax.models (configs/backbones.py sets the others)
    config.model.num_classes = 0  # 0: the data set's classes (manifest.json); the paper's data has 4
    config.model.dropout_rate = 0.5
    config.model.dtype = "float32"  # "bfloat16": bf16 compute, float32 parameters
    # How convolutions and attention are computed (models.layers.FORMULATIONS): auto (XLA's convolution on GPU/TPU,
    # the faster CPU formulations on CPU), native or fast. The numbers move only within float32 rounding.
    config.model.conv_impl = "auto"

    config.optim = ml_collections.ConfigDict()
    config.optim.learning_rate = 0.001
    config.optim.momentum = 0.9
    config.optim.weight_decay = 0.0
    config.batch_size = 384
    config.eval_batch_size = 384

    # The study's two arms (alexnet_jax.training.arms): the same split, ImageNet weights or torchvision's init.
    config.arms = ml_collections.ConfigDict()
    config.arms.pretrained = configs.arm("imagenet")
    config.arms.scratch = configs.arm("scratch")
    config.epochs = ml_collections.ConfigDict()
    config.epochs.pretrained = 200
    config.epochs.scratch = 400

    config.selection = "test"  # "test" (paper) or "val"
    config.pipeline = "auto"  # "auto", "on_device" or "tf_data"
    config.keep_every_epoch = False  # keep every epoch's train state (needs ~0.46 GB per epoch and arm)
    config.keep_final_state = False  # keep the last train state of a finished arm (otherwise only best/ stays)
    # The resume state is saved in the background, at most this often (0 turns a rule off), and
    # whenever SIGTERM/SIGINT stops a run. See docs/performance.md for the measured cost.
    config.checkpoint_every_epochs = 0
    config.checkpoint_every_seconds = 120.0
    config.pack_runs = 1  # K > 1: train K runs of an arm in one vmapped step (--runs must give them)
    return config
