"""When nurture steps fall due: pure scheduling, standard library only.

Step *i* falls due ``wait_days[i]`` days after the previous step fell due (step 0: after
enrollment). A runner that was away catches up: every step whose time has come falls due,
in order, each on its own schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Progress:
    due_steps: list[int]  # the steps that fell due, in order
    current_step: int  # the next step to fall due (== len(steps) when completed)
    next_due_at: datetime | None  # None when completed
    completed: bool


def first_due(enrolled_at: datetime, wait_days: list[int]) -> datetime | None:
    return enrolled_at + timedelta(days=wait_days[0]) if wait_days else None


def advance(
    current_step: int, next_due_at: datetime | None, wait_days: list[int], now: datetime
) -> Progress:
    """The steps due by ``now`` and where the enrollment stands afterwards."""
    due: list[int] = []
    step, due_at = current_step, next_due_at
    while due_at is not None and step < len(wait_days) and due_at <= now:
        due.append(step)
        step += 1
        due_at = due_at + timedelta(days=wait_days[step]) if step < len(wait_days) else None
    completed = step >= len(wait_days)
    return Progress(due, step, None if completed else due_at, completed)
