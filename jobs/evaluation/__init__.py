"""The evaluate job's metrics, computed on the executors where the rows are."""
