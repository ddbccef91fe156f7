"""One clock for a local stack that can be moved forward: the product's `Services.clock` and the Codat simulator's
`SimClock` read the same offset, so Codat's webhooks (`generatedDate`) and the product's own timestamps agree when
`make dev` (`POST /_dev/clock`) or a test moves time on to rehearse the consent lifecycle (expiry, reminders,
scheduled functions). Development only: the deployed product reads `consent.domain.resources.utc_now`."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from consent_dev.codat_simulator.state import SimClock

if TYPE_CHECKING:
    from consent_dev.codat_simulator import CodatSimulator

# As far as the clock may run ahead of the wall clock: far beyond any consent's lifetime, well inside the calendar.
MAX_OFFSET = timedelta(days=3653)

# ISO 8601 durations of whole days, hours and minutes only (`P14D`, `PT36H`, `P1DT12H30M`): no years or months
# (their length depends on the date), no weeks, no seconds, no fractions, no sign.
_DURATION = re.compile(
    r"P(?:(?P<days>[0-9]{1,9})D)?(?:T(?=[0-9])(?:(?P<hours>[0-9]{1,9})H)?(?:(?P<minutes>[0-9]{1,9})M)?)?"
)


class ClockError(ValueError):
    """A move the dev clock refuses (the message says why)."""


def parse_duration(text: str) -> timedelta:
    """`text` as an ISO 8601 duration of days, hours and minutes (e.g. `P14D`, `PT1H30M`); ClockError otherwise."""
    if text.startswith("-"):
        raise ClockError(f"{text!r} would move the clock back: it only moves forward")
    found = _DURATION.fullmatch(text)
    if found is None or not any(found.groupdict().values()):
        raise ClockError(f"{text!r} is not an ISO 8601 duration of days, hours and minutes (e.g. P14D, PT1H30M)")
    days, hours, minutes = (int(found[name] or 0) for name in ("days", "hours", "minutes"))
    if days > MAX_OFFSET.days or hours > MAX_OFFSET.days * 24 or minutes > MAX_OFFSET.days * 24 * 60:
        raise ClockError(f"{text} is further than the clock may run ahead ({MAX_OFFSET.days} days)")
    return timedelta(days=days, hours=hours, minutes=minutes)


def timestamp(moment: datetime) -> str:
    """UTC, to the microsecond, with `Z`: `2026-03-01T09:30:00.123456Z`."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class DevClock:
    """The wall clock plus an offset that only moves forward; call it for the time (it is a `Services.clock`).

    The offset lives in one `SimClock` (`source`): `DevClock()` makes one, to give the simulator
    (`CodatSimulator(clock=clock.source)`); `DevClock.of(simulator)` reads an existing simulator's, and after each move
    lets it do what became due (first reads, webhook retries). `on_advance` adds such a follower."""

    def __init__(self, source: SimClock | None = None) -> None:
        self.source = source or SimClock()
        self._followers: list[Callable[[timedelta], None]] = []
        self._moving = threading.Lock()

    @classmethod
    def of(cls, simulator: CodatSimulator) -> DevClock:
        """The simulator's clock, for the product too: moving it moves Codat's time and does what is due there."""
        clock = cls(simulator.clock)
        clock.on_advance(simulator.clock_advanced)
        return clock

    def __call__(self) -> datetime:
        return self.source.now()

    def now(self) -> datetime:
        return self.source.now()

    @property
    def offset(self) -> timedelta:
        return self.source.offset

    def on_advance(self, follower: Callable[[timedelta], None]) -> None:
        """Call `follower(by)` after every move, once the new time is in force."""
        with self._moving:
            self._followers.append(follower)

    def advance(self, by: timedelta) -> datetime:
        """Move forward by `by` (never back: ClockError) and let the followers catch up; the new time."""
        if by < timedelta(0):
            raise ClockError("the clock only moves forward")
        with self._moving:  # one move at a time: each follower sees the moves in order
            if self.source.offset + by > MAX_OFFSET:
                raise ClockError(f"the clock may run at most {MAX_OFFSET.days} days ahead")
            self.source.advance(by)
            for follower in self._followers:
                follower(by)
        return self()

    def describe(self) -> dict[str, object]:
        """What `GET /_dev/clock` answers: the time it reads, and how far ahead of the wall clock that is."""
        offset = self.offset
        seconds = offset.total_seconds()
        return {
            "now": timestamp(datetime.now(UTC) + offset),
            "offsetSeconds": int(seconds) if seconds.is_integer() else seconds,
        }
