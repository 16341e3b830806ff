"""Model files: the artifact and the training checkpoints (both written by one atomic folder
replace) and the portable payload that carries a model to another process."""
