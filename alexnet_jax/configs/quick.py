"""A small-scale version of the paper's protocol that finishes in minutes on a 2-core CPU.

Same code path as the paper (paper split rule scaled to the data set's size, the same
augmentation, SGD and peak selection), with fewer images, smaller images and few epochs:
    python -m alexnet_jax.data prepare --dataset=synthetic --num_examples=1200 --output=data/synthetic_quick
    python -m alexnet_jax.train --config=alexnet_jax/configs/quick.py \
        --data_dir=data/synthetic_quick --workdir=runs/quick --runs=0-1
"""

from alexnet_jax.configs import paper


def get_config():
    config = paper.get_config()
    config.data.dir = "data/synthetic_quick"
    config.data.image_size = 72  # resized once from the prepared 256 px
    config.augment.crop_size = 64  # AlexNet's minimum input is 63 px
    config.optim.learning_rate = 0.01  # few epochs: a larger step
    config.batch_size = 64
    config.eval_batch_size = 128
    config.epochs.pretrained = 4
    config.epochs.scratch = 8
    return config
