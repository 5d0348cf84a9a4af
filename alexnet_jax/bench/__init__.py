"""Training and evaluation throughput: this project's step against the paper's PyTorch recipe.

`python -m alexnet_jax.bench --help` (the docstring of `__main__`) says what is measured and how.

Modules, one concept each: `settings` (the frozen Settings the flags build), `workload` (the
synthetic images and the paper's augmentation both frameworks use), `flops` (analytic FLOPs
and peaks), `records` (the measurement record and its MFU and projection), `jax_side` (the
JAX measurements and levers), `predict_side` (`--predict`: galaxies per second of
`predict.engine` from decoded JPEGs and from prepared arrays), `torch_side` and `torch_predict`
(the PyTorch training and prediction measurements, the only modules that import torch, run in
the subprocess), `torch_worker` (that subprocess's loop over them), `torch_process` (starting
it), `report` (the summary line and Markdown table), `run` (the whole benchmark in order) and
`__main__` (the flags, read once). Importing any of them but `torch_side`, `torch_predict` and
`torch_worker` imports neither torch nor TensorFlow.
"""
