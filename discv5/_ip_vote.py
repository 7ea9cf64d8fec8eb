"""Our external endpoint, predicted from what peers report in PONG (pure, time passed in).

discv5-theory "Maintaining The Local Node Record": a node may learn its public endpoint from the
recipient-ip/port of PONG messages. Like go-ethereum's ipTracker, each peer has one vote (its
latest), votes expire after a window, and an endpoint wins only with a minimum number of votes
and a plurality. A user-pinned address is never replaced (the driver does not consult this then).
"""

from __future__ import annotations

from collections import Counter

from ._types import Address

__all__ = ["IPVote"]


class IPVote:
    """Majority vote over the endpoints peers say they see us at.

    Args:
        min_votes: votes an endpoint needs before it is believed.
        window: seconds a vote counts.
    """

    def __init__(self, min_votes: int = 3, window: float = 300.0) -> None:
        self.min_votes = min_votes
        self.window = window
        self._votes: dict[bytes, tuple[Address, float]] = {}

    def add(self, voter: bytes, endpoint: Address, now: float) -> None:
        """Record that ``voter`` saw us at ``endpoint``; replaces its previous vote."""
        self._votes[voter] = (endpoint, now)

    def winner(self, now: float) -> Address | None:
        """The endpoint with the most live votes, if it has at least ``min_votes``."""
        cutoff = now - self.window
        for voter in [v for v, (_, at) in self._votes.items() if at < cutoff]:
            del self._votes[voter]
        if not self._votes:
            return None
        counts = Counter(endpoint for endpoint, _ in self._votes.values())
        (best, votes), *rest = counts.most_common(2)
        if votes < self.min_votes or (rest and rest[0][1] == votes):
            return None
        return best

    def __len__(self) -> int:
        return len(self._votes)
