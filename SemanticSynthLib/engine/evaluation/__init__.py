"""Evaluation as in the seed papers: an auxiliary segmenter, image similarity, FID, and a report."""
