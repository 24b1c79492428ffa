"""A thread-safe consecutive-failure circuit breaker for the sibling-service clients."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker; thread-safe.

    Closed: calls flow, each failed attempt counts and a success resets the count. After ``failure_threshold``
    consecutive failures it opens: calls fail fast for ``reset_seconds``. Then it half-opens and lets exactly one
    trial call through (others still fail fast); the trial's success closes it, its failure opens it again.
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1.")
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose cool-down has passed reads as half-open."""
        with self._lock:
            if self._state is CircuitState.OPEN and self._cooled_down():
                return CircuitState.HALF_OPEN
            return self._state

    def allow_request(self) -> bool:
        """True if a call may go out now; in half-open state only the single trial call gets True."""
        with self._lock:
            if self._state is CircuitState.CLOSED:
                return True
            if self._state is CircuitState.OPEN:
                if not self._cooled_down():
                    return False
                self._transition(CircuitState.HALF_OPEN)
                self._trial_in_flight = False
            if self._trial_in_flight:
                return False
            self._trial_in_flight = True
            return True

    def record_success(self) -> None:
        """The service answered (even with a 4xx): close the circuit and forget past failures."""
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            if self._state is not CircuitState.CLOSED:
                self._transition(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """A transport failure or a 5xx: count it, open the circuit at the threshold or after a failed trial."""
        with self._lock:
            self._trial_in_flight = False
            self._failures += 1
            if self._state is CircuitState.HALF_OPEN or (
                self._state is CircuitState.CLOSED and self._failures >= self.failure_threshold
            ):
                self._opened_at = self._clock()
                self._transition(CircuitState.OPEN)

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.reset_seconds

    def _transition(self, state: CircuitState) -> None:
        if state is not self._state:
            logger.warning(
                "circuit %s",
                state.value,
                extra={"service": self.name, "circuit_state": state.value, "failures": self._failures},
            )
        self._state = state
