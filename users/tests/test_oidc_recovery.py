"""The e-mail links landing on the service's own pages (no frontend): forgot password, new password, confirm e-mail."""

import re

import pytest
import requests

from users.models import CustomUser
from users.services.outbox import email_enqueue
from users.services.outbox_delivery import outbox_relay

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
NEW_PASSWORD = "An0ther-Passw0rd!"


@pytest.fixture
def pages_as_frontend(issuer, settings) -> str:
    settings.FRONTEND_URL = f"{issuer}/account"
    return settings.FRONTEND_URL


def _link(mailoutbox, subject: str, prefix: str) -> str:
    outbox_relay(grace_seconds=0)
    [mail] = [m for m in mailoutbox if m.subject == subject]
    match = re.search(re.escape(prefix) + r"\?[^\s\"<]+", mail.body)
    assert match, mail.body
    return match.group(0).replace("&amp;", "&")


def test_forgot_password_then_a_new_password_from_the_link(browser, student, pages_as_frontend, mailoutbox, issuer):
    page = browser.get("/account/sign-in/")
    assert 'href="/account/forgot-password/"' in page.text
    forgot = browser.get("/account/forgot-password/")
    sent = browser.post_form(forgot, {"email": student.email})
    assert "If an account uses this address" in sent.text
    unknown = browser.post_form(forgot, {"email": "nobody@school.test"})
    assert unknown.text.replace("nobody@school.test", "") == sent.text.replace(student.email, "")

    link = _link(mailoutbox, "Reset your password", f"{pages_as_frontend}/reset-password")
    form = browser.get(link)
    done = browser.post_form(form, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})

    assert "Your password is set" in done.text
    login = requests.post(
        f"{issuer}/api/v1/users/login/", json={"username": student.username, "password": NEW_PASSWORD}, timeout=10
    )
    assert login.status_code == 200
    again = browser.post_form(
        browser.get(link), {"new_password": "Y3t-another-pass!", "confirm_password": "Y3t-another-pass!"}
    )
    assert again.status_code == 400


def test_a_mismatched_confirmation_is_refused(browser, student, pages_as_frontend, mailoutbox):
    browser.post_form(browser.get("/account/forgot-password/"), {"email": student.email})
    form = browser.get(_link(mailoutbox, "Reset your password", f"{pages_as_frontend}/reset-password"))

    refused = browser.post_form(form, {"new_password": NEW_PASSWORD, "confirm_password": "something-else-1!"})

    assert refused.status_code == 400
    assert "The two passwords do not match." in refused.text


def test_confirming_an_email_address_needs_the_button(browser, student, pages_as_frontend, mailoutbox):
    email_enqueue(user=student, template="verify_email")
    link = _link(mailoutbox, "Confirm your e-mail address", f"{pages_as_frontend}/verify-email")

    page = browser.get(link)
    assert CustomUser.objects.get(pk=student.pk).email_verified is False  # opening the link changes nothing
    done = browser.post_form(page, {})

    assert "Your e-mail address is confirmed" in done.text
    assert CustomUser.objects.get(pk=student.pk).email_verified is True


def test_the_emails_sign_in_link_opens_the_sign_in_page(browser, pages_as_frontend):
    page = browser.get(f"{pages_as_frontend}/login")

    assert 'name="password"' in page.text
