"""The errors a job reports as one line and an exit code, and the wrapper that does it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from rbmcore.errors import ForeignFolderError, ModelFileError


class JobError(Exception):
    """An error a user can act on: printed as one line, the process exits with ``exit_code``."""

    exit_code = 1


class UsageError(JobError):
    exit_code = 2


class BadInputError(JobError):
    exit_code = 3


class LockHeldError(JobError):
    exit_code = 4


class StaleModelError(JobError):
    """The model is older than the run allows (``score --max-model-age``)."""

    exit_code = 7


EXIT_MODEL_FILE = 5
EXIT_DIVERGED = 6


def single_line(message: object) -> str:
    """``message`` on one line (a wrapped library message may span several)."""
    return " ".join(str(message).split())


def fail(message: str, code: int) -> None:
    print(f"rbm-reco: error: {single_line(message)}", file=sys.stderr)
    sys.exit(code)


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> None:
    """Run a job's ``main`` and exit: one clear line and a non-zero code for a ``JobError``."""
    try:
        code = main(argv)
    except JobError as exc:
        fail(str(exc), exc.exit_code)
    except ForeignFolderError as exc:
        fail(str(exc), UsageError.exit_code)
    except ModelFileError as exc:
        fail(f"bad model file: {exc}", EXIT_MODEL_FILE)
    except FloatingPointError as exc:
        fail(str(exc), EXIT_DIVERGED)
    except KeyboardInterrupt:
        print("rbm-reco: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
