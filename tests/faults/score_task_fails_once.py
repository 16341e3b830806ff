"""``rbm-reco`` with one fault injected, for the tests: the first attempt of the first scoring
task raises, so Spark must retry it (run with a ``local[N,retries]`` master).

    python -m tests.faults.score_task_fails_once score --out OUT --dt D --master local[2,4] ...

The production scorer (``jobs.scoring.workers.make_scorer``) is wrapped here, in the test code;
this module is pickled by value, so the executors need not import the tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from pyspark import cloudpickle

import jobs.score
from jobs.cli import main

INJECTED = "injected failure (tests.faults.score_task_fails_once)"


def failing_first_attempt(make_scorer: Callable[..., Callable]) -> Callable[..., Callable]:
    """``make_scorer`` whose scorer raises in the first attempt of partition 0."""

    def make(*args: Any, **kwargs: Any) -> Callable:
        score_partition = make_scorer(*args, **kwargs)

        def fails_once(batches: Iterator[Any]) -> Iterator[Any]:
            from pyspark import TaskContext

            ctx = TaskContext.get()
            if ctx is not None and ctx.attemptNumber() == 0 and ctx.partitionId() == 0:
                raise RuntimeError(INJECTED)
            yield from score_partition(batches)

        return fails_once

    return make


if __name__ == "__main__":
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    jobs.score.make_scorer = failing_first_attempt(jobs.score.make_scorer)
    main(sys.argv[1:])
