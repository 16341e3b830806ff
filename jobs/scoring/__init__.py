"""The Spark side of scoring: the executors' scoring functions, and the checks of an export."""
