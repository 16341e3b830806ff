"""The data layer: ratings storage (CSR), batches, held-out splits, the synthetic generator."""
