"""Tensor kernels the models share: sampling and sparse products over stored entries."""
