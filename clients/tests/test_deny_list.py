"""Tests of the bounded deny-list on its own (its use by the verifier is in test_tokens.py)."""

from __future__ import annotations

from clients.deny_list import DenyList


def test_the_deny_list_is_bounded_by_size():
    deny_list = DenyList(max_entries=3)

    deny_list.deny(session_ids=["s1", "s2", "s3", "s4", "s5"])

    assert len(deny_list) == 3
    assert not deny_list.refuses({"sid": "s1"})
    assert not deny_list.refuses({"sid": "s2"})
    assert deny_list.refuses({"sid": "s5"})


def test_entries_expire_after_the_ttl():
    now = [1_000_000.0]
    deny_list = DenyList(ttl_seconds=600, clock=lambda: now[0])
    deny_list.deny(session_ids=["old"], user_ids=[7])

    now[0] += 601
    deny_list.deny(session_ids=["new"])

    assert len(deny_list) == 1
    assert not deny_list.refuses({"sid": "old"})
    assert not deny_list.refuses({"sub": "7", "iat": 999_000})
    assert deny_list.refuses({"sid": "new"})


def test_a_denied_user_is_refused_only_for_tokens_issued_up_to_the_revocation_plus_skew():
    deny_list = DenyList(skew_seconds=10, clock=lambda: 1_200.0)
    deny_list.deny(user_ids=[42], revoked_at=1_000.0)

    assert deny_list.refuses({"sub": "42", "iat": 1_010})
    assert not deny_list.refuses({"sub": "42", "iat": 1_011})
    assert not deny_list.refuses({"sub": "43", "iat": 900})
    assert deny_list.refuses({"sub": "42", "iat": "not-a-number"})  # fails closed
