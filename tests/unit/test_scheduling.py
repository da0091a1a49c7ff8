"""dlmi_workflow.scheduling: at most one re-evaluation timer of Snakemake's scheduler loop waits at a time, and the
private method it replaces is still the one the pinned Snakemake calls."""
import inspect
import threading
from importlib import metadata

from snakemake.scheduling.job_scheduler import JobScheduler

from dlmi_workflow import scheduling


class Loop:
    """The two attributes of a JobScheduler that the re-evaluation timer touches."""

    def __init__(self):
        self._open_jobs = threading.Semaphore(0)


def patched():
    class Scheduler(Loop):
        def _schedule_reevalutation(self, delay):
            raise AssertionError("the original should be replaced")

    scheduling.limit_reevaluation_timers(Scheduler)
    scheduling.limit_reevaluation_timers(Scheduler)  # idempotent
    return Scheduler()


def timers():
    return [t for t in threading.enumerate() if isinstance(t, threading.Timer)]


def test_many_requests_start_one_timer_that_wakes_the_loop_once():
    loop = patched()
    before = len(timers())
    for _ in range(50):
        loop._schedule_reevalutation(0.2)
    assert len(timers()) - before == 1
    assert loop._open_jobs.acquire(timeout=60)  # it fires
    assert not loop._open_jobs.acquire(timeout=0.5)  # and only once
    loop._schedule_reevalutation(0.01)  # a later request starts a new one
    assert loop._open_jobs.acquire(timeout=60)


def test_a_sooner_request_is_not_held_back_by_a_later_timer():
    loop = patched()
    loop._schedule_reevalutation(3600)
    loop._schedule_reevalutation(0.01)
    assert loop._open_jobs.acquire(timeout=60)


def test_the_pinned_snakemake_schedules_through_the_replaced_method():
    assert metadata.version("snakemake") == scheduling.PATCHED_VERSION
    assert "self._schedule_reevalutation(self.job_rate_limiter.timespan)" in inspect.getsource(JobScheduler.schedule)
    assert "_open_jobs" in inspect.getsource(JobScheduler.__init__)
