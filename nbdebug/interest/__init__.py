"""Samples of interest: per-sample attributes, anomaly scores, the intention learners with
their scoring index, and the saved answers."""
