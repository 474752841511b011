"""Proof that a property test ran every branch: a property such as "accepted in its shape or
refused with a message" says nothing if no generated input ever reached one of the two."""

from __future__ import annotations

from collections import Counter

from hypothesis import event


class Branches:
    """Counts, across all the examples of one property test, which branch each one took."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def took(self, branch: str) -> None:
        event(branch)  # also in hypothesis' statistics (pytest --hypothesis-show-statistics)
        self.seen[branch] += 1

    def assert_each_ran(self, *branches: str) -> None:
        never = [branch for branch in branches if not self.seen[branch]]
        assert not never, f"no generated example took {never}; seen: {dict(self.seen)}"
