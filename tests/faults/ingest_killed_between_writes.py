"""``rbm-reco ingest`` killed between its writes, for the tests: the process sends itself
SIGKILL (what a lost node or the kernel's OOM killer does) once the item vocabulary is written
to the staging folder and before the training rows are.

    python -m tests.faults.ingest_killed_between_writes --ratings R --out OUT ...

The production writer of the per-user rows (``jobs.ingest.write_vectors``) is replaced here,
in the test code.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import jobs.ingest
from jobs.common.errors import run_main


def killed(*_args: Any, **_kwargs: Any) -> None:
    """Stands in for the training rows' write: the process dies here."""
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    jobs.ingest.write_vectors = killed
    run_main(jobs.ingest.main, sys.argv[1:])
