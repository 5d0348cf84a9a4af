"""The training core, bottom to top: the compiled steps and the run directory's protocol; the
arms, the plan (the config read once) and the data a run sees; one arm's records and the epoch
loop; the session, whose `train(plan, runs, arms)` is the one entry point for training runs;
the launcher of many runs over devices and processes. Commands (`alexnet_jax.train`,
`alexnet_jax.study`) sit above it; models, data and inputs below it."""

from alexnet_jax.training.plan import Plan, resolve
from alexnet_jax.training.session import train

__all__ = ["Plan", "resolve", "train"]
