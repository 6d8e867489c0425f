"""Schedules as APScheduler triggers, and the period a moment belongs to.

A period is named by its start: the latest fire time at or before a moment. Intervals are anchored at the
Unix epoch and cron lines are read in UTC, so every process on every host agrees on the periods without
talking to the others; the runs table then lets only one of them run each period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from chainrisk.serve.config import JobSchedule, interval_seconds

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Schedule:
    """Every `interval_s` seconds from the epoch, or at each time of a five-field `cron` line (UTC)."""

    interval_s: int | None = None
    cron: str | None = None

    @classmethod
    def of(cls, configured: JobSchedule, default: Schedule) -> Schedule:
        """The configured schedule, or `default` where the config gives neither interval nor cron."""
        if configured.interval is not None:
            return cls(interval_s=interval_seconds(configured.interval))
        if configured.cron is not None:
            return cls(cron=configured.cron)
        return default

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron!r} (UTC)"
        return f"every {_duration(self.interval_s or 0)}"

    def trigger(self) -> BaseTrigger:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        if self.cron is not None:
            return CronTrigger.from_crontab(self.cron, timezone=UTC)
        return IntervalTrigger(seconds=self.interval_s or 1, start_date=EPOCH, timezone=UTC)

    def period(self, now: datetime) -> datetime:
        """Start of the period `now` falls in: the latest fire time at or before it."""
        if self.cron is None:
            step = self.interval_s or 1
            return EPOCH + timedelta(seconds=int((now - EPOCH).total_seconds()) // step * step)
        return _latest_fire(self.trigger(), now)

    def previous(self, period: datetime) -> datetime:
        """The period before `period`."""
        return self.period(period - _TICK)

    def next_after(self, period: datetime) -> datetime:
        """The period after `period`."""
        if self.cron is None:
            return period + timedelta(seconds=self.interval_s or 1)
        fire: datetime | None = self.trigger().get_next_fire_time(None, period + _TICK)
        assert fire is not None  # check_cron refused lines that never fire
        return fire.astimezone(UTC)

    def length_s(self, now: datetime) -> float:
        """Length of the period `now` is in (cron periods may differ in length)."""
        start = self.period(now)
        return (self.next_after(start) - start).total_seconds()


def _latest_fire(trigger: BaseTrigger, now: datetime) -> datetime:
    """The latest fire time at or before `now`: look back in doubling steps until one fires, then walk
    forward, so a minutely line costs a few steps and a yearly one a few dozen."""
    span = timedelta(minutes=1)
    while True:
        fire: datetime | None = trigger.get_next_fire_time(None, now - span)
        if fire is not None and fire <= now:
            break
        if span > timedelta(days=4 * 366):  # check_cron refuses lines that never fire; this is a guard
            raise ValueError(f"{trigger} has not fired in four years")
        span *= 2
    while True:
        later: datetime | None = trigger.get_next_fire_time(None, fire + _TICK)
        if later is None or later > now:
            return fire.astimezone(UTC)
        fire = later


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
