"""Classify a survey: catalogue-scale prediction with calibrated uncertainty, and embeddings.

A job reads a source (`sources`: a folder, a prepared set, an RA/Dec catalogue whose SDSS cut-outs
are fetched and cached, or a list of image files), averages an ensemble's members (`members`)
over MC-dropout samples and test-time views (`engine`, with `uncertainty`'s entropy and mutual
information, and each member's fitted temperature), and streams batches through the device
(`stream`) into resumable part files merged into one Parquet, CSV or .npy file (`output`), one
row per galaxy with its id, coordinates, numbers, status and the model's identity. `embed` writes
the penultimate layer's features instead, and `neighbours` finds the galaxies most like one.
`python -m alexnet_jax.predict` is the command (docs/predict.md). Importing this package imports
no JAX; its modules do.
"""
