"""Rendering and sending the service's e-mails (text + HTML) for outbox messages.

Each template under ``templates/users/email/`` has ``<name>_subject.txt``, ``<name>.txt`` and
``<name>.html``. Links are built from ``FRONTEND_URL`` at delivery time, so tokens are never stored.
Messages that carry a link go to the account's current address (the token is bound to it); notices
go to the address recorded when the change happened. Every e-mail carries the outbox id as its
``Message-ID`` and in ``X-Message-ID``, so a duplicate delivery can be recognised.
"""

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import identify_hasher
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from users.models import CustomUser, OutboxMessage
from users.services import account
from users.services.login import mfa_required_for
from users.services.outbox import PermanentDeliveryError


@dataclass(frozen=True)
class Prepared:
    """An e-mail ready to render, or the reason it is deliberately not sent."""

    to: str = ""
    context: dict[str, Any] | None = None
    skip: str = ""


def _hours(seconds: int) -> int:
    return max(1, round(seconds / 3600))


def _recipient(message: OutboxMessage) -> CustomUser | None:
    """The active account the message is for: by id, or (anonymous requests) by address."""
    payload = message.payload
    if payload.get("user_id") is not None:
        return CustomUser.objects.filter(pk=payload["user_id"], is_active=True).first()
    email = payload.get("email") or ""
    if not email:
        return None
    return CustomUser.objects.filter(email__iexact=email, is_active=True).order_by("pk").first()


def _welcome(message: OutboxMessage, user: CustomUser) -> Prepared:
    return Prepared(to=message.payload.get("to") or user.email, context={"login_url": f"{settings.FRONTEND_URL}/login"})


def _verify_email(message: OutboxMessage, user: CustomUser) -> Prepared:
    if user.email_verified:
        return Prepared(skip="the address is already verified")
    timeout = account.email_verification_tokens.timeout_seconds()
    return Prepared(
        to=user.email, context={"verify_url": account.email_verification_link(user), "expires_hours": _hours(timeout)}
    )


def _password_reset(message: OutboxMessage, user: CustomUser) -> Prepared:
    timeout = account.password_reset_tokens.timeout_seconds()
    return Prepared(
        to=user.email, context={"reset_url": account.password_reset_link(user), "expires_hours": _hours(timeout)}
    )


def _invitation(message: OutboxMessage, user: CustomUser) -> Prepared:
    timeout = account.invitation_tokens.timeout_seconds()
    return Prepared(
        to=user.email,
        context={
            "invitation_url": account.invitation_link(user),
            "expires_days": max(1, round(timeout / 86_400)),
            "forgot_password_url": f"{settings.FRONTEND_URL}/login",
        },
    )


def _password_changed(message: OutboxMessage, user: CustomUser) -> Prepared:
    return Prepared(
        to=message.payload.get("to") or user.email,
        context={"changed_at": message.created_at, "login_url": f"{settings.FRONTEND_URL}/login"},
    )


def _account_migrated(message: OutboxMessage, user: CustomUser) -> Prepared:
    # A hash this service cannot verify (or none) was imported as it was: the old password will not work.
    try:
        identify_hasher(user.password)
    except ValueError:
        password_works = False
    else:
        password_works = True
    return Prepared(
        to=message.payload.get("to") or user.email,
        context={"login_url": f"{settings.FRONTEND_URL}/login", "password_works": password_works},
    )


# What a ``mfa_changed`` notice says happened, by (change, method); a factor not listed gets the change's wording.
MFA_CHANGE_WORDING = {
    ("enrolled", "totp"): "An authenticator app was set up as a second factor",
    ("removed", "totp"): "The authenticator app was removed from the second factors",
    ("recovery_codes_generated", "recovery_code"): "New recovery codes were created (the earlier ones no longer work)",
    ("enrolled", ""): "A second factor was added",
    ("removed", ""): "A second factor was removed",
}


def _mfa_notice(message: OutboxMessage, user: CustomUser) -> Prepared:
    """The notices of second-factor changes: what happened (``what``) and whether the role needs a factor."""
    sent = message.payload.get("context", {})
    change, method = sent.get("change", ""), sent.get("method", "")
    what = MFA_CHANGE_WORDING.get((change, method)) or MFA_CHANGE_WORDING.get((change, ""), "A second factor changed")
    return Prepared(
        to=message.payload.get("to") or user.email,
        context={
            "changed_at": message.created_at,
            "login_url": f"{settings.FRONTEND_URL}/login",
            "what": what,
            "required": mfa_required_for(user),
        },
    )


TEMPLATES: dict[str, Callable[[OutboxMessage, CustomUser], Prepared]] = {
    "welcome": _welcome,
    "verify_email": _verify_email,
    "password_reset": _password_reset,
    "invitation": _invitation,
    "password_changed": _password_changed,
    "account_migrated": _account_migrated,
    "mfa_changed": _mfa_notice,
    "mfa_recovery_code_used": _mfa_notice,
    "mfa_reset": _mfa_notice,
}


def _message_id_header(message: OutboxMessage) -> str:
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    return f"<outbox-{message.pk}@{domain}>"


def email_render(*, template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """Subject (one line), text body and HTML body of ``template``."""
    subject = render_to_string(f"users/email/{template}_subject.txt", context)
    text = render_to_string(f"users/email/{template}.txt", context)
    html = render_to_string(f"users/email/{template}.html", context)
    return " ".join(subject.split()), text, html


def email_deliver(message: OutboxMessage) -> str | None:
    """Send the e-mail of one outbox message; returns why it was skipped, or None once sent."""
    prepare = TEMPLATES.get(message.topic)
    if prepare is None:
        raise PermanentDeliveryError(f"unknown e-mail template {message.topic!r}")
    user = _recipient(message)
    if user is None:
        return "no active account for this message"
    prepared = prepare(message, user)
    if prepared.skip:
        return prepared.skip
    if not prepared.to:
        return "the account has no e-mail address"
    context = {
        **message.payload.get("context", {}),
        **(prepared.context or {}),
        "user": user,
        "name": user.first_name or user.username,
        "frontend_url": settings.FRONTEND_URL,
    }
    subject, text, html = email_render(template=message.topic, context=context)
    email = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[prepared.to],
        headers={
            "Message-ID": _message_id_header(message),
            "X-Message-ID": str(message.pk),
            "Auto-Submitted": "auto-generated",
        },
    )
    email.attach_alternative(html, "text/html")
    email.send(fail_silently=False)
    return None
