"""Errors rbmcore raises for problems a user can act on (import-light: no torch here)."""


class ModelFileError(ValueError):
    """A model or checkpoint folder that must not be used: missing, truncated, tampered or
    mismatched."""
