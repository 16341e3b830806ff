"""rbmcore: the RBM model library of rbm-reco. Pure torch/numpy; knows nothing of Spark."""
