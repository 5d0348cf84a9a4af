"""The training core: arms as data, the run directory's protocol, the data a run sees, the
compiled steps, one arm's records and the epoch loop. Commands (`alexnet_jax.train`,
`alexnet_jax.study`) sit above it; models, data and inputs below it."""
