"""The services behind the admin's enrolment page and every step-up: ``login.enrolment_login`` and
``services.step_up`` (which changes are sensitive), called without HTTP."""

import time

import pytest

from conftest import TEST_PASSWORD
from users.exceptions import FactorConflict, MfaTokenInvalid, ProofRejected
from users.models import MfaChallenge, SecurityEvent, TOTPDevice, UserType
from users.services import mfa
from users.services.credentials import Channel
from users.services.login import LoginPending, enrolment_login, password_login
from users.services.step_up import email_change_needs_step_up, person_create_needs_step_up
from users.tests.mfa_support import code_at, enrol_totp

pytestmark = pytest.mark.django_db


def _enrolment_token(user, channel: Channel = Channel.ADMIN) -> str:
    outcome = password_login(identifier=user.username, password=TEST_PASSWORD, channel=channel, ip=None, user_agent="")
    assert isinstance(outcome, LoginPending)
    return outcome.mfa_token


@pytest.fixture
def policy(settings):
    settings.MFA_REQUIRED_ROLES = frozenset({"hod"})


class TestEnrolmentLogin:
    def test_the_first_code_confirms_the_app_and_completes_the_login(self, hod, policy):
        token = _enrolment_token(hod)
        secret = mfa.totp_enrol_begin(user=hod).secret

        completed, codes = enrolment_login(
            mfa_token=token,
            code=code_at(secret, time.time()),
            channel=Channel.ADMIN,
            ip=None,
            user_agent="",
            start_session=False,
        )

        assert (completed.user, completed.amr, completed.session) == (hod, ["pwd", "otp", "mfa"], None)
        assert len(codes) == 10
        assert TOTPDevice.objects.get(user=hod).confirmed_at is not None
        assert MfaChallenge.objects.get(user=hod).used_at is not None
        assert SecurityEvent.objects.get(type="login_succeeded").data["enrolled"] is True

    def test_a_wrong_code_changes_nothing(self, hod, policy):
        token = _enrolment_token(hod)
        mfa.totp_enrol_begin(user=hod)

        with pytest.raises(ProofRejected):
            enrolment_login(mfa_token=token, code="000000", channel=Channel.ADMIN, ip=None, user_agent="")

        assert TOTPDevice.objects.get(user=hod).confirmed_at is None
        assert MfaChallenge.objects.get(user=hod).used_at is None
        assert not SecurityEvent.objects.filter(type="login_succeeded").exists()

    def test_nothing_pending_is_a_conflict(self, hod, policy):
        token = _enrolment_token(hod)

        with pytest.raises(FactorConflict):
            enrolment_login(mfa_token=token, code="123456", channel=Channel.ADMIN, ip=None, user_agent="")

    def test_another_channels_token_or_a_factor_step_is_refused(self, hod, staff, policy):
        api_token = _enrolment_token(hod, Channel.API)
        secret = mfa.totp_enrol_begin(user=hod).secret
        enrol_totp(staff)
        factor_token = password_login(
            identifier=staff.username, password=TEST_PASSWORD, channel=Channel.ADMIN, ip=None, user_agent=""
        ).mfa_token  # type: ignore[union-attr]

        with pytest.raises(MfaTokenInvalid):
            enrolment_login(
                mfa_token=api_token, code=code_at(secret, time.time()), channel=Channel.ADMIN, ip=None, user_agent=""
            )
        with pytest.raises(MfaTokenInvalid):
            enrolment_login(mfa_token=factor_token, code="123456", channel=Channel.ADMIN, ip=None, user_agent="")


class TestWhichChangesAreSensitive:
    @pytest.mark.parametrize(
        ("user_type", "sensitive"),
        [(UserType.HOD, True), ("1", True), (UserType.STAFF, False), ("3", False), ("hod", False), (None, False)],
    )
    def test_creating_an_hod(self, user_type, sensitive):
        assert person_create_needs_step_up(user_type=user_type) is sensitive

    @pytest.mark.parametrize(
        ("email", "sensitive"),
        [("new@school.test", True), ("student@school.test", False), (" Student@School.test ", False), (None, False)],
    )
    def test_a_new_address(self, student, email, sensitive):
        assert email_change_needs_step_up(user=student, email=email) is sensitive
