"""Spark jobs of rbm-reco: ingest, train, score, evaluate, run, generate, recommend.

Each module is a spark-submit entry point (``spark-submit jobs/<name>.py ...``) and a
sub-command of the ``rbm-reco`` CLI. Spark I/O lives here; the maths lives in ``rbmcore``.
"""
