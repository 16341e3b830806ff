"""rbmcore: the RBM model library of rbm-reco. Pure torch/numpy; knows nothing of Spark."""

__version__ = "0.2.0"  # rbm-reco's version (pyproject.toml reads it from here)
