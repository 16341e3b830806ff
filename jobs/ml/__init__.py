"""rbm-reco as a ``pyspark.ml`` Estimator and Model (docs/spark-ml.md)."""

from jobs.ml.recommender import RBMRecommender, RBMRecommenderModel

__all__ = ["RBMRecommender", "RBMRecommenderModel"]
