"""Samples of interest: per-sample attributes, anomaly scores, the intention learner and
the saved answers."""
