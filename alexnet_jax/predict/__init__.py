"""Classify galaxies at catalogue scale: members, the forward pass, uncertainty, streaming and output."""
