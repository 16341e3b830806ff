"""Errors rbmcore raises for problems a user can act on (import-light: no torch here)."""


class ModelFileError(ValueError):
    """A model or checkpoint folder that must not be used: missing, truncated, tampered or
    mismatched."""


class ForeignFolderError(ValueError):
    """An output folder that exists and is not of the kind about to replace it (a model
    folder, a checkpoint, an export): it is left untouched."""
