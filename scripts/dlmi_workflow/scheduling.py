"""A fix for Snakemake's local scheduler loop, applied when the workflow is parsed (workflow support, not
science: no rule script imports it).

In Snakemake 9.27.1 every pass of `JobScheduler.schedule` ends by starting a `threading.Timer` that wakes the
loop again after the job-rate timespan (1 s by default, `--max-jobs-per-timespan 100/1s`). A pass woken by a
finished job starts one more timer beside those already waiting, so after n finished jobs about n timers
wake the loop every second, and each pass re-reads the resources, input sizes and, with the default ILP
scheduler, solves a job-selection problem over every ready job. On the 2-core test machine the Snakemake
process of a 224-job study had used 208 CPU-s after 630 s, a third of a core and growing (34 CPU-s after
745 s with this fix). The loop is otherwise woken by each job that finishes, fails or is
submitted; the timer is only needed so that jobs held back by the rate limit are looked at again.

`limit_reevaluation_timers` keeps at most one such timer waiting, unless a sooner wake-up is asked for.
tests/unit/test_scheduling.py pins it to the Snakemake release it was read from.
"""
from __future__ import annotations

import threading
import time

PATCHED_VERSION = "9.27.1"  # the Snakemake release whose scheduler this was read from
_lock = threading.Lock()


def limit_reevaluation_timers(scheduler_class) -> None:
    """Replace `scheduler_class._schedule_reevalutation` (Snakemake's spelling) by one that starts a timer
    only when none is waiting that fires at least as soon. Idempotent."""
    if getattr(scheduler_class, "_dlmi_one_timer", False):
        return

    def schedule_reevaluation(self, delay) -> None:
        with _lock:
            due = time.monotonic() + float(delay)
            waiting = getattr(self, "_dlmi_timer_due", None)
            if waiting is not None and waiting <= due:
                return
            self._dlmi_timer_due = due

        def wake() -> None:
            with _lock:
                if getattr(self, "_dlmi_timer_due", None) == due:
                    self._dlmi_timer_due = None
            self._open_jobs.release()

        timer = threading.Timer(float(delay), wake)
        timer.daemon = True  # never keeps a finished run waiting for its last tick
        timer.start()

    scheduler_class._schedule_reevalutation = schedule_reevaluation
    scheduler_class._dlmi_one_timer = True
