"""Calibration: are the probabilities the classifier gives as often right as they claim?

Astronomers threshold probabilities, so a 0.9 should be right nine times in ten. This package
measures that (`metrics`: ECE with equal-mass bins, NLL, Brier score, reliability bins), fits
temperature scaling on held-out logits and stores it beside the checkpoint (`temperature`),
and calibrates every finished run of a study (`python -m alexnet_jax.calibration`). It needs
numpy and scipy only; the study command imports the prediction engine lazily.
"""
