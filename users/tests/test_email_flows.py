"""E-mail flows end to end: API request → real Celery worker → mail outbox → follow the link → result."""

from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework import status

from conftest import TEST_PASSWORD
from users.models import CustomUser, OutboxMessage, SessionEndReason, UserSession, UserType
from users.services import account
from users.services.outbox import email_enqueue
from users.services.outbox_delivery import outbox_relay
from users.services.people.create import user_rows_create
from users.tests.outbox_support import API, link_in, wait_for

NEW_PASSWORD = "Brand-new-passphrase-77"
REGISTRATION = {
    "username": "ada",
    "email": "ada@school.test",
    "password": "Quiet-river-stones-2024",
    "first_name": "Ada",
}


def _mails_to(mailoutbox, address: str, subject: str) -> list:
    return [m for m in mailoutbox if m.to == [address] and m.subject == subject]


def _html(mail) -> str:
    (html, mimetype) = mail.alternatives[0]
    assert mimetype == "text/html"
    return html


class TestVerificationFlow:
    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("celery_worker")
    def test_registration_sends_welcome_and_a_single_use_verification_link(self, api_client, mailoutbox):
        response = api_client.post(f"{API}/register/", REGISTRATION, format="json")
        assert response.status_code == status.HTTP_201_CREATED

        wait_for(lambda: len(mailoutbox) == 2)
        welcome = _mails_to(mailoutbox, "ada@school.test", "Welcome to your school account")[0]
        verify = _mails_to(mailoutbox, "ada@school.test", "Confirm your e-mail address")[0]
        assert "ada" in welcome.body
        link = link_in(verify.body)
        assert link["page"] == "verify-email"
        assert f"http://localhost:3000/verify-email?uid={link['uid']}&amp;token={link['token']}" in _html(verify)

        confirmed = api_client.post(f"{API}/verify-email/", {"uid": link["uid"], "token": link["token"]}, format="json")
        again = api_client.post(f"{API}/verify-email/", {"uid": link["uid"], "token": link["token"]}, format="json")

        assert confirmed.status_code == status.HTTP_200_OK
        assert CustomUser.objects.get(username="ada").email_verified is True
        assert again.status_code == status.HTTP_400_BAD_REQUEST
        assert again.json()["code"] == "invalid_link"

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("celery_worker")
    def test_resend_sends_a_fresh_link_and_does_nothing_once_verified(self, client_for, student, mailoutbox):
        client = client_for(student)

        response = client.post(f"{API}/verify-email/resend/", {}, format="json")

        assert response.status_code == status.HTTP_202_ACCEPTED
        mail = wait_for(lambda: _mails_to(mailoutbox, student.email, "Confirm your e-mail address"))[0]
        link = link_in(mail.body)
        verified = client.post(f"{API}/verify-email/", {"uid": link["uid"], "token": link["token"]}, format="json")
        assert verified.status_code == status.HTTP_200_OK

        before = OutboxMessage.objects.filter(topic="verify_email").count()
        response = client.post(f"{API}/verify-email/resend/", {}, format="json")

        assert response.status_code == status.HTTP_202_ACCEPTED
        assert response.json()["detail"] == "Your e-mail address is already confirmed."
        assert OutboxMessage.objects.filter(topic="verify_email").count() == before

    @pytest.mark.django_db
    def test_anonymous_resend_answers_the_same_for_any_address(self, api_client, student):
        known = api_client.post(f"{API}/verify-email/resend/", {"email": student.email}, format="json")
        unknown = api_client.post(f"{API}/verify-email/resend/", {"email": "nobody@school.test"}, format="json")
        missing = api_client.post(f"{API}/verify-email/resend/", {}, format="json")

        assert known.status_code == unknown.status_code == status.HTTP_202_ACCEPTED
        assert known.json() == unknown.json()
        assert missing.status_code == status.HTTP_400_BAD_REQUEST

    @pytest.mark.django_db
    def test_a_verification_link_expires(self, api_client, student, settings, monkeypatch):
        settings.EMAIL_VERIFICATION_TIMEOUT_SECONDS = 3600
        token = account.email_verification_tokens.make_token(student)
        uid = account.uid_encode(student)
        later = datetime.now() + timedelta(seconds=3601)  # noqa: DTZ005 - Django's token clock is naive
        monkeypatch.setattr(account.EmailVerificationTokens, "_now", lambda self: later)

        response = api_client.post(f"{API}/verify-email/", {"uid": uid, "token": token}, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json() == {"detail": account.INVALID_LINK, "code": "invalid_link"}
        monkeypatch.setattr(account.EmailVerificationTokens, "_now", lambda self: later - timedelta(seconds=2))
        assert api_client.post(f"{API}/verify-email/", {"uid": uid, "token": token}, format="json").status_code == 200

    @pytest.mark.django_db
    @pytest.mark.parametrize(
        "body", [{"uid": "MQ", "token": "abc-def"}, {"uid": "!!", "token": "x"}, {"uid": "OTk5OTk", "token": "1-2"}]
    )
    def test_forged_links_are_refused(self, api_client, student, body):
        response = api_client.post(f"{API}/verify-email/", body, format="json")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["code"] == "invalid_link"


class TestLoginRequiresVerification:
    @pytest.mark.django_db
    def test_unverified_accounts_are_refused_only_with_the_right_password(self, api_client, student, settings):
        settings.REQUIRE_EMAIL_VERIFICATION = True
        login = f"{API}/login/"

        wrong = api_client.post(login, {"username": student.username, "password": "not-the-password"}, format="json")
        nobody = api_client.post(login, {"username": "nobody", "password": "not-the-password"}, format="json")
        right = api_client.post(login, {"username": student.username, "password": TEST_PASSWORD}, format="json")

        assert wrong.status_code == nobody.status_code == status.HTTP_401_UNAUTHORIZED
        assert wrong.json() == nobody.json()
        assert right.status_code == status.HTTP_403_FORBIDDEN
        assert right.json()["code"] == "email_not_verified"
        assert not UserSession.objects.filter(user=student).exists()

        CustomUser.objects.filter(pk=student.pk).update(email_verified=True)
        verified = api_client.post(login, {"username": student.username, "password": TEST_PASSWORD}, format="json")
        assert verified.status_code == status.HTTP_200_OK

    @pytest.mark.django_db
    def test_off_by_default(self, api_client, student):
        response = api_client.post(
            f"{API}/login/", {"username": student.username, "password": TEST_PASSWORD}, format="json"
        )

        assert response.status_code == status.HTTP_200_OK


class TestPasswordReset:
    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("celery_worker")
    def test_reset_end_to_end_ends_every_session_and_the_link_works_once(
        self, api_client, client_for, student, mailoutbox
    ):
        old_client = client_for(student)
        assert old_client.get(f"{API}/profile/").status_code == status.HTTP_200_OK

        response = api_client.post(f"{API}/password-reset/", {"email": student.email.upper()}, format="json")
        assert response.status_code == status.HTTP_202_ACCEPTED

        mail = wait_for(lambda: _mails_to(mailoutbox, student.email, "Reset your password"))[0]
        link = link_in(mail.body)
        assert link["page"] == "reset-password"
        assert "token=" in _html(mail)
        confirm = {"uid": link["uid"], "token": link["token"], "new_password": NEW_PASSWORD}
        mismatch = api_client.post(
            f"{API}/password-reset/confirm/", {**confirm, "confirm_password": "other"}, format="json"
        )
        weak = api_client.post(
            f"{API}/password-reset/confirm/",
            {**confirm, "new_password": "12345678", "confirm_password": "12345678"},
            format="json",
        )
        done = api_client.post(
            f"{API}/password-reset/confirm/", {**confirm, "confirm_password": NEW_PASSWORD}, format="json"
        )
        reused = api_client.post(
            f"{API}/password-reset/confirm/", {**confirm, "confirm_password": NEW_PASSWORD}, format="json"
        )

        assert mismatch.status_code == status.HTTP_400_BAD_REQUEST
        assert "confirm_password" in mismatch.json()
        assert weak.status_code == status.HTTP_400_BAD_REQUEST
        assert "new_password" in weak.json()
        assert done.status_code == status.HTTP_200_OK
        assert reused.status_code == status.HTTP_400_BAD_REQUEST
        assert reused.json()["code"] == "invalid_link"
        # every session ended: the old access token is refused at once
        assert old_client.get(f"{API}/profile/").status_code == status.HTTP_401_UNAUTHORIZED
        assert set(UserSession.objects.filter(user=student).values_list("end_reason", flat=True)) == {
            SessionEndReason.PASSWORD_CHANGED
        }
        login = f"{API}/login/"
        old = api_client.post(login, {"username": student.username, "password": TEST_PASSWORD}, format="json")
        new = api_client.post(login, {"username": student.username, "password": NEW_PASSWORD}, format="json")
        assert old.status_code == status.HTTP_401_UNAUTHORIZED
        assert new.status_code == status.HTTP_200_OK
        assert new.json()["user"]["email_verified"] is True  # the link proved the address
        notice = wait_for(lambda: _mails_to(mailoutbox, student.email, "Your password was changed"))
        assert len(notice) == 1
        assert OutboxMessage.objects.filter(topic="user.password_changed", payload__data__via="reset").exists()

    @pytest.mark.django_db
    def test_unknown_address_gets_the_same_answer_after_the_same_work(self, api_client, student, mailoutbox):
        url = f"{API}/password-reset/"
        with CaptureQueriesContext(connection) as known_queries:
            known = api_client.post(url, {"email": student.email}, format="json")
        with CaptureQueriesContext(connection) as unknown_queries:
            unknown = api_client.post(url, {"email": "nobody@school.test"}, format="json")

        assert known.status_code == unknown.status_code == status.HTTP_202_ACCEPTED
        assert known.content == unknown.content
        assert known.json() == {"detail": "If an account uses this address, a password reset link has been sent to it."}
        assert [q["sql"].split()[0] for q in known_queries] == [q["sql"].split()[0] for q in unknown_queries]

        assert outbox_relay(grace_seconds=0) == 2
        assert [m.to for m in mailoutbox] == [[student.email]]
        skipped = OutboxMessage.objects.get(payload__email="nobody@school.test")
        assert skipped.last_error == "not sent: no active account for this message"

    @pytest.mark.django_db
    def test_an_expired_reset_link_is_refused(self, api_client, student, settings, monkeypatch):
        settings.PASSWORD_RESET_TIMEOUT = 900
        link = link_in(account.password_reset_link(student))
        body = {
            "uid": link["uid"],
            "token": link["token"],
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        }
        later = datetime.now() + timedelta(seconds=901)  # noqa: DTZ005 - Django's token clock is naive
        monkeypatch.setattr(account.PasswordResetTokens, "_now", lambda self: later)

        expired = api_client.post(f"{API}/password-reset/confirm/", body, format="json")

        assert expired.status_code == status.HTTP_400_BAD_REQUEST
        assert expired.json() == {"detail": account.INVALID_LINK, "code": "invalid_link"}
        monkeypatch.setattr(account.PasswordResetTokens, "_now", lambda self: later - timedelta(seconds=2))
        assert api_client.post(f"{API}/password-reset/confirm/", body, format="json").status_code == 200

    @pytest.mark.django_db
    def test_a_verification_token_is_no_reset_token(self, api_client, student):
        token = account.email_verification_tokens.make_token(student)
        body = {"uid": account.uid_encode(student), "token": token}

        response = api_client.post(
            f"{API}/password-reset/confirm/",
            {**body, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
            format="json",
        )

        assert response.status_code == status.HTTP_400_BAD_REQUEST

    @pytest.mark.django_db
    def test_requests_for_one_address_are_throttled(self, api_client, student, settings):
        settings.THROTTLE_PASSWORD_RESET_RATE = "3/hour"
        url = f"{API}/password-reset/"

        answers = [api_client.post(url, {"email": student.email}, format="json").status_code for _ in range(4)]
        other = api_client.post(url, {"email": "someone@school.test"}, format="json")

        assert answers == [202, 202, 202, 429]
        assert other.status_code == status.HTTP_202_ACCEPTED


class TestInvitationAndNotices:
    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("celery_worker")
    def test_an_invited_account_chooses_its_password_from_the_link(self, api_client, mailoutbox):
        with transaction.atomic():
            user = user_rows_create(
                username="newteacher", email="teacher@school.test", password=None, user_type=UserType.STAFF
            )
            email_enqueue(user=user, template="invitation", context={"invited_by": "Dr <Head>"})

        mail = wait_for(
            lambda: _mails_to(mailoutbox, "teacher@school.test", "You have been invited to your school account")
        )[0]
        assert "Dr <Head>" in mail.body
        assert "Dr &lt;Head&gt;" in _html(mail)
        link = link_in(mail.body)
        assert link["page"] == "reset-password"
        refused = api_client.post(f"{API}/login/", {"username": "newteacher", "password": NEW_PASSWORD}, format="json")
        assert refused.status_code == status.HTTP_401_UNAUTHORIZED

        done = api_client.post(
            f"{API}/password-reset/confirm/",
            {
                "uid": link["uid"],
                "token": link["token"],
                "new_password": NEW_PASSWORD,
                "confirm_password": NEW_PASSWORD,
            },
            format="json",
        )

        assert done.status_code == status.HTTP_200_OK
        login = api_client.post(f"{API}/login/", {"username": "newteacher", "password": NEW_PASSWORD}, format="json")
        assert login.status_code == status.HTTP_200_OK

    @pytest.mark.django_db(transaction=True)
    @pytest.mark.usefixtures("celery_worker")
    def test_changing_the_password_sends_a_notice(self, client_for, student, mailoutbox):
        client = client_for(student)

        response = client.post(
            f"{API}/change-password/",
            {"old_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
            format="json",
        )

        assert response.status_code == status.HTTP_200_OK
        notice = wait_for(lambda: _mails_to(mailoutbox, student.email, "Your password was changed"))[0]
        assert student.username in notice.body
        assert "Your other sessions have been signed out" in _html(notice)
        assert OutboxMessage.objects.filter(topic="user.password_changed", payload__data__via="change").exists()


@pytest.mark.django_db
def test_every_template_renders_text_and_html(student):
    from users.services.emails import TEMPLATES, email_render

    context = {
        "user": student,
        "name": "Ann",
        "login_url": "http://x/login",
        "verify_url": "http://x/verify-email?uid=a&token=b",
        "reset_url": "http://x/reset-password?uid=a&token=b",
        "invitation_url": "http://x/reset-password?uid=a&token=c",
        "forgot_password_url": "http://x/login",
        "expires_hours": 1,
        "expires_days": 7,
        "changed_at": datetime(2026, 1, 1, 12, 0),  # noqa: DTZ001
    }
    for name in TEMPLATES:
        subject, text, html = email_render(template=name, context=context)
        assert subject, name
        assert "\n" not in subject, name
        assert "Hello Ann" in text, name
        assert html.lstrip().startswith("<!DOCTYPE html>"), name
