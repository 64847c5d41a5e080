"""Which implementations can run on this machine at all; the metric classes leave out the rest."""

import sys

from ._common import AVAILABILITY, CANDIDATE_IMPLS, PROBED, _label, _records_log


class Availability:
    """1 where the implementation can run here, 0 where it cannot (reason on stderr and, with
    ``ATTNBENCH_RECORDS``, in the records): a backend appearing or breaking shows in history.
    n/a where it was not asked (a commit older than the probe, or ``ATTNBENCH_PROBE=0``)."""

    version = "attnbench-availability-1"
    params = (CANDIDATE_IMPLS,)
    param_names = ["implementation"]
    rounds = 1

    def track_available(self, impl):
        if not PROBED:
            print(f"attnbench: availability of {impl} not asked (no probe)", file=sys.stderr)
            return float("nan")
        reason = AVAILABILITY.get(impl)
        if reason:
            print(f"attnbench: {impl} cannot run here: {reason}", file=sys.stderr)
        log = _records_log(type(self).__name__)
        if log is not None:
            log({"impl": impl, "reason": reason})
            log.close()
        return 0.0 if reason else 1.0

    _label(track_available, "can run here (1) or not (0, reason in the records)", "available")
