"""The order in which ``unigrounding ablate`` hands jobs to its lanes.

An ablation is a handful of jobs of known rough length (codec fine-tunings,
and the stage chains some codecs start from) run on ``lanes`` worker
processes: whenever a lane is free it takes the first job in a priority order
whose prerequisite (its stage chain) has finished. Which order is best depends
on the lengths — run the long jobs early, but not at the price of a lane
waiting for a chain — so :func:`dispatch_order` simulates that dispatch rule
for every order and keeps one with the earliest estimated finish.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from itertools import permutations

#: Beyond this many jobs the orders are too many to try (8! = 40320 take
#: about a second); longest-first is used instead.
EXHAUSTIVE_UP_TO = 8


def finish_time(
    order: Sequence[Hashable],
    seconds: Mapping[Hashable, float],
    after: Mapping[Hashable, Hashable],
    lanes: int,
) -> float:
    """When the last job ends if free lanes take, in ``order``, the first job
    whose prerequisite ``after[job]`` (if any) has ended; a lane with nothing
    ready waits for the next job to end."""
    free = [0.0] * lanes
    ends: dict[Hashable, float] = {}
    pending = list(order)
    while pending:
        lane = min(range(lanes), key=free.__getitem__)
        now = free[lane]
        ready = next(
            (j for j in pending if j not in after or ends.get(after[j], float("inf")) <= now),
            None,
        )
        if ready is None:  # its prerequisites are still running: wait for the next one to end
            free[lane] = min(t for t in ends.values() if t > now)
            continue
        pending.remove(ready)
        ends[ready] = free[lane] = now + seconds[ready]
    return max(ends.values(), default=0.0)


def dispatch_order(
    seconds: Mapping[Hashable, float], after: Mapping[Hashable, Hashable], lanes: int
) -> list[Hashable]:
    """A priority order of the jobs (keys of ``seconds``, estimated lengths)
    that finishes soonest under :func:`finish_time`'s dispatch rule. Every
    order is tried for up to :data:`EXHAUSTIVE_UP_TO` jobs (ties keep the
    earliest in longest-first enumeration); more jobs go longest first, each
    prerequisite before what waits on it."""
    longest_first = sorted(seconds, key=lambda j: -seconds[j])
    if len(seconds) > EXHAUSTIVE_UP_TO:
        return sorted(longest_first, key=lambda j: j not in after.values())
    orders = permutations(longest_first)
    return list(min(orders, key=lambda order: finish_time(order, seconds, after, lanes)))


__all__ = ["EXHAUSTIVE_UP_TO", "dispatch_order", "finish_time"]
