"""Training: the config (every default in one place), the CD trainer, the composite trainers,
the choices made on validation, the refit on all ratings, checkpoints to resume, and
data-parallel training."""
