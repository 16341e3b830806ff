"""The Spark side of training: the data read back, the model files, training on executors."""
