"""Fingerprints of the programs a GPU gets, computed on any machine: is the GPU path unchanged by a CPU change?

    git archive REV alexnet_jax | tar -x -C /tmp/before
    for m in "alexnet 224" "resnet50 224" "convnext_tiny 64"; do
      PYTHONPATH=/tmp/before python experiments/gpu_hlo_fingerprint.py $m
      PYTHONPATH=. python experiments/gpu_hlo_fingerprint.py $m
    done

Prints the sha256 of the StableHLO (source locations dropped) of the model's forward pass and of a
loss gradient, with every formulation choice made as on a GPU: `jax.default_backend` answers "gpu"
while the model is traced, and the model options are the defaults ('auto'). Equal lines before and
after mean the GPU compiles the same program (docs/backbones.md records the check of issue 20).
"""

import hashlib
import sys

import jax
import jax.numpy as jnp

jax.default_backend = lambda: "gpu"  # before the models read it

from alexnet_jax.models import get_model  # noqa: E402

name, size = sys.argv[1], int(sys.argv[2])
model = get_model(name, 4)
variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))
x = jax.ShapeDtypeStruct((8, size, size, 3), jnp.float32)
for label, f in (
    ("forward", lambda v, x: model.apply(v, x, train=False)),
    ("grad", jax.grad(lambda v, x: model.apply(v, x, train=False).sum())),
):
    text = jax.jit(f).lower(variables, x).as_text()
    body = "\n".join(line.split(" loc(")[0] for line in text.splitlines() if not line.startswith("#loc"))
    print(f"{name} {size} {label} {hashlib.sha256(body.encode()).hexdigest()[:16]} {len(body)}")
