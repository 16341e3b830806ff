"""``rbm-reco`` run as if from another container on the same machine, for the tests: the same
host name, but its own pid namespace, where the pid it records in the export lock is one that
is not alive in the namespace of the run looking at the lock.

    python -m tests.faults.other_container DEAD_PID score --out OUT --dt D ...

(A lock of such a run used to look abandoned to a run on this host: same host name, pid gone.)
"""

from __future__ import annotations

import json
import sys

from jobs.cli import main
from jobs.storage import locks

OTHER_NAMESPACE = "pid:[4026500000]"


def in_other_container(dead_pid: int) -> None:
    """Make this process's lock document read as a process of another pid namespace whose pid
    is ``dead_pid``."""
    real_identity = locks.process_identity
    real_document = locks.DateLock.document

    def identity(pid: int | None = None) -> str | None:
        if pid is not None:
            return real_identity(pid)
        boot = (real_identity() or "unknown/").split("/")[0]
        return f"{boot}/{OTHER_NAMESPACE}/{dead_pid}/1"

    def document(self: locks.DateLock) -> str:
        holder = json.loads(real_document(self))
        holder.update(pid=dead_pid, process=identity())
        return json.dumps(holder, sort_keys=True) + "\n"

    locks.DateLock.document = document


if __name__ == "__main__":
    in_other_container(int(sys.argv[1]))
    main(sys.argv[2:])
