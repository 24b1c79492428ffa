"""Tests of the circuit breaker on its own (its use by ServiceClient is in test_base.py)."""

from __future__ import annotations

import threading

from clients.breaker import CircuitBreaker, CircuitState


def test_half_open_lets_exactly_one_trial_through(clock):
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=10, clock=clock)
    breaker.record_failure()
    assert breaker.allow_request() is False

    clock.advance(10)
    assert breaker.allow_request() is True
    assert breaker.allow_request() is False  # a second caller while the trial is in flight
    breaker.record_success()
    assert breaker.allow_request() is True
    assert breaker.allow_request() is True


def test_opens_at_the_threshold_and_a_success_resets_the_count(clock):
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED

    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN


def test_concurrent_failures_open_it_exactly_once(clock, caplog):
    breaker = CircuitBreaker(failure_threshold=50, reset_seconds=10, clock=clock)
    threads = [threading.Thread(target=lambda: [breaker.record_failure() for _ in range(10)]) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert breaker.state is CircuitState.OPEN
    assert [record.getMessage() for record in caplog.records].count("circuit open") == 1
