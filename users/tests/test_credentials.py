"""The one credential check, called without HTTP: verify, lockout, accounting, audit, concurrency."""

import pytest

from conftest import TEST_PASSWORD
from users.exceptions import EmailNotVerified, InvalidClient, InvalidCredentials
from users.models import CustomUser, LockoutCounter, SecurityEvent
from users.services import lockout
from users.services.credentials import Channel, client_credentials_check, credentials_check, login_succeeded
from users.services.service_accounts import service_account_create

pytestmark = pytest.mark.django_db


def _check(identifier: str, password: str, *, ip: str | None = "10.1.1.1", channel=Channel.API, admit=None):
    return credentials_check(
        identifier=identifier, password=password, ip=ip, user_agent="ua/1", channel=channel, admit=admit
    )


def _outcome(identifier: str, password: str, **kwargs) -> str:
    try:
        _check(identifier, password, **kwargs)
    except InvalidCredentials:
        return "invalid"
    except lockout.AccountLocked:
        return "locked"
    return "ok"


class TestCredentialsCheck:
    def test_the_right_password_opens_the_account_by_username_or_email(self, student):
        assert _check(student.username, TEST_PASSWORD) == student
        assert _check(student.email.upper(), TEST_PASSWORD) == student

    def test_a_failure_is_audited_with_its_channel_and_never_the_password(self, student):
        _outcome(student.username, "nope-1", channel=Channel.ADMIN)
        _outcome("ghost", "nope-2", channel=Channel.API)

        failed = SecurityEvent.objects.filter(type="login_failed").order_by("id")
        assert [(e.user_id, e.data, e.ip, e.user_agent) for e in failed] == [
            (student.pk, {"channel": "admin", "known_account": True}, "10.1.1.1", "ua/1"),
            (None, {"channel": "api", "known_account": False}, "10.1.1.1", "ua/1"),
        ]

    def test_a_success_is_not_yet_a_login(self, student):
        _check(student.username, TEST_PASSWORD)
        assert not SecurityEvent.objects.filter(type="login_succeeded").exists()

        login_succeeded(user=student, channel=Channel.ADMIN, ip="10.1.1.1", user_agent="ua/1")

        event = SecurityEvent.objects.get(type="login_succeeded")
        assert (event.user_id, event.data, event.ip) == (student.pk, {"channel": "admin"}, "10.1.1.1")

    def test_locked_refuses_the_right_password_on_every_channel(self, student):
        outcomes = [_outcome(student.username, f"wrong-{n}", channel=Channel.API) for n in range(5)]

        assert outcomes == ["invalid"] * 5
        assert _outcome(student.username, TEST_PASSWORD, channel=Channel.ADMIN) == "locked"
        assert _outcome(student.email, TEST_PASSWORD, channel=Channel.DJANGO_AUTH) == "locked"

    def test_inactive_accounts_and_unusable_passwords_fail_like_wrong_passwords(self, student, staff):
        CustomUser.objects.filter(pk=student.pk).update(is_active=False)
        staff.set_unusable_password()
        staff.save()

        assert _outcome(student.username, TEST_PASSWORD) == "invalid"
        assert _outcome(staff.username, TEST_PASSWORD) == "invalid"
        assert SecurityEvent.objects.filter(type="login_failed").count() == 2

    def test_an_entry_rule_refusal_counts_as_a_failure(self, student):
        def hods_only(user):
            return user.user_type == 1

        outcomes = [_outcome(student.username, TEST_PASSWORD, admit=hods_only) for _ in range(6)]

        assert outcomes == ["invalid"] * 5 + ["locked"]  # the right password reveals nothing and still counts

    def test_unverified_email_is_told_only_after_the_password(self, student, settings):
        settings.REQUIRE_EMAIL_VERIFICATION = True
        CustomUser.objects.filter(pk=student.pk).update(email_verified=False)

        assert _outcome(student.username, "wrong") == "invalid"
        with pytest.raises(EmailNotVerified):
            _check(student.username, TEST_PASSWORD)

    def test_a_broken_verify_gives_its_slot_back_and_counts_nothing(self, student, monkeypatch):
        def broken(self, raw):
            raise RuntimeError("hasher unavailable")

        monkeypatch.setattr(CustomUser, "check_password", broken)

        with pytest.raises(RuntimeError):
            _check(student.username, TEST_PASSWORD)

        row = LockoutCounter.objects.get(
            subject=lockout.Subject.for_login(user_id=student.pk, identifier="", ip=None).account_key
        )
        assert (row.in_flight, row.failures) == (0, 0)

    def test_the_per_ip_lock_spans_accounts(self, make_user, settings):
        settings.LOGIN_IP_THRESHOLD = 4
        users = [make_user() for _ in range(5)]

        outcomes = [_outcome(u.username, "wrong", ip="10.7.7.7") for u in users[:4]]

        assert outcomes == ["invalid"] * 4
        assert _outcome(users[4].username, TEST_PASSWORD, ip="10.7.7.7") == "locked"
        assert _outcome(users[4].username, TEST_PASSWORD, ip="10.7.7.8") == "ok"


class TestClientCredentialsCheck:
    def test_right_secret_and_no_lockout_write(self, django_assert_num_queries):
        account, secret = service_account_create(name="gateway", scopes=[])

        with django_assert_num_queries(2):  # the lockout check, the account
            assert client_credentials_check(client_id="gateway", client_secret=secret, ip="10.0.0.1") == account

    def test_wrong_secrets_are_audited_and_lock_the_client(self):
        service_account_create(name="gateway", scopes=[])

        for _ in range(5):
            with pytest.raises(InvalidClient):
                client_credentials_check(client_id="gateway", client_secret="guess", ip="10.0.0.1")

        with pytest.raises(lockout.AccountLocked):
            client_credentials_check(client_id="gateway", client_secret="guess", ip="10.0.0.1")
        failed = SecurityEvent.objects.filter(type="login_failed")
        assert failed.count() == 5
        assert failed.first().data == {"channel": "service-token", "client_id": "gateway", "known_account": True}

    def test_a_success_clears_earlier_failures(self):
        _, secret = service_account_create(name="gateway", scopes=[])
        for _ in range(4):
            with pytest.raises(InvalidClient):
                client_credentials_check(client_id="gateway", client_secret="guess", ip=None)

        client_credentials_check(client_id="gateway", client_secret=secret, ip=None)

        assert not LockoutCounter.objects.filter(
            subject=lockout.Subject.for_client(client_id="gateway", ip=None).account_key
        ).exists()


@pytest.mark.django_db(transaction=True)
class TestConcurrentLogins:
    def test_sixteen_simultaneous_right_passwords_all_get_in_k_at_a_time(
        self, student, in_parallel, slow_password_check
    ):
        outcomes = in_parallel(16, lambda i: _outcome(student.username, TEST_PASSWORD, ip=f"10.2.0.{i}"))

        assert outcomes == ["ok"] * 16
        assert slow_password_check[0] <= 5  # never more than K passwords under evaluation
        assert not LockoutCounter.objects.filter(subject__startswith="login:account:").exists()

    def test_a_parallel_burst_of_wrong_passwords_evaluates_k_and_locks(self, student, in_parallel, slow_password_check):
        outcomes = in_parallel(20, lambda i: _outcome(student.username, f"wrong-{i}", ip=f"10.3.0.{i}"))

        assert outcomes.count("invalid") == 5
        assert outcomes.count("locked") == 15
        assert _outcome(student.username, TEST_PASSWORD) == "locked"
        assert SecurityEvent.objects.filter(type="lockout").count() == 1


class TestPasswordHashUpgrade:
    """Hashes made with other parameters (Django's Argon2 defaults, PBKDF2) are re-hashed at the next login."""

    @pytest.fixture(autouse=True)
    def _production_hashers(self, settings, _fast_hashing_and_clean_cache):
        from user_service import settings as configured

        settings.PASSWORD_HASHERS = configured.PASSWORD_HASHERS

    def _stored_with(self, user: CustomUser, hasher) -> str:
        encoded = hasher.encode(TEST_PASSWORD, hasher.salt())
        CustomUser.objects.filter(pk=user.pk).update(password=encoded)
        return encoded

    def test_new_passwords_use_owasps_argon2id_parameters(self, student):
        from argon2 import Type, extract_parameters

        student.set_password(TEST_PASSWORD)
        params = extract_parameters(student.password.removeprefix("argon2"))
        assert (params.type, params.memory_cost, params.time_cost, params.parallelism) == (Type.ID, 19456, 2, 1)

    @pytest.mark.parametrize("old", ["django-argon2-defaults", "pbkdf2"])
    def test_the_right_password_upgrades_an_old_hash(self, student, old):
        from django.contrib.auth.hashers import Argon2PasswordHasher, PBKDF2PasswordHasher, identify_hasher

        from users.hashers import Argon2idPasswordHasher

        before = self._stored_with(student, Argon2PasswordHasher() if old != "pbkdf2" else PBKDF2PasswordHasher())

        _check(student.username, TEST_PASSWORD)

        after = CustomUser.objects.get(pk=student.pk).password
        assert after != before
        assert isinstance(identify_hasher(after), Argon2idPasswordHasher)
        assert not identify_hasher(after).must_update(after)
        assert _check(student.username, TEST_PASSWORD) == student  # the new hash opens the account

    def test_a_wrong_password_leaves_the_old_hash(self, student):
        from django.contrib.auth.hashers import Argon2PasswordHasher

        before = self._stored_with(student, Argon2PasswordHasher())

        assert _outcome(student.username, "not-the-password") == "invalid"

        assert CustomUser.objects.get(pk=student.pk).password == before
