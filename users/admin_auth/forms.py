"""The forms of the admin's sign-in pages: the password, the second step, enrolment and "confirm it's you".

They parse what the person typed; every decision is the services' (``users.services.login``, ``reauth``, ``mfa``).
"""

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError

from users.exceptions import EmailNotVerified, InvalidCredentials
from users.forms import PasskeyAnswerField
from users.http import client_ip, user_agent
from users.models import UserType
from users.services import mfa
from users.services.credentials import Channel
from users.services.lockout import AccountLocked
from users.services.login import LoginPending, password_login
from users.services.mfa.webauthn import WEBAUTHN
from users.services.reauth import PASSWORD_FIELD

LOCKED_MESSAGE = "Too many failed sign-in attempts. Try again in %(seconds)s seconds."


def hod_may_enter(user: AbstractBaseUser | AnonymousUser) -> bool:
    """The admin's own rule: active staff accounts of HODs."""
    return bool(
        user.is_active and getattr(user, "is_staff", False) and getattr(user, "user_type", None) == UserType.HOD
    )


def locked_error(exc: AccountLocked) -> ValidationError:
    return ValidationError(LOCKED_MESSAGE, code="locked", params={"seconds": exc.extra["retry_after"]})


class HODLoginForm(AdminAuthenticationForm):
    """The admin's password step: ``users.services.login.password_login`` with the admin's rule, so the lockout,
    the second-factor policy and the audit are the API's. ``pending`` is set when a second step follows (no
    ``get_user()`` then: nobody is signed in before it completes)."""

    error_messages = {**AdminAuthenticationForm.error_messages, "locked": LOCKED_MESSAGE}
    retry_after: int | None = None
    pending: LoginPending | None = None

    def clean(self) -> dict:
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if not username or not password:
            return self.cleaned_data  # the required-field errors are already there
        ip = client_ip(self.request) if self.request is not None else None
        agent = user_agent(self.request) if self.request is not None else ""
        try:
            outcome = password_login(
                identifier=username,
                password=password,
                channel=Channel.ADMIN,
                ip=ip,
                user_agent=agent,
                admit=hod_may_enter,
                start_session=False,  # Django's login() opens the admin's session
            )
        except InvalidCredentials as exc:
            raise self.get_invalid_login_error() from exc
        except AccountLocked as exc:
            self.retry_after = exc.extra["retry_after"]
            raise locked_error(exc) from exc
        except EmailNotVerified as exc:
            raise ValidationError(exc.message, code=exc.code) from exc
        if isinstance(outcome, LoginPending):
            self.pending = outcome
        else:
            self.user_cache = outcome.user
        return self.cleaned_data


def _code_field(label: str, *, autofocus: bool = True) -> forms.RegexField:
    return forms.RegexField(
        r"^\s*[0-9]{6}\s*$",
        max_length=16,
        required=False,
        label=label,
        error_messages={"invalid": "Type the 6 digits your authenticator app shows."},
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "pattern": "[0-9 ]*",
                "autofocus": autofocus,
            }
        ),
    )


def _recovery_code_field() -> forms.CharField:
    return forms.CharField(
        max_length=64,
        required=False,
        label="Or a recovery code",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class ProofForm(forms.Form):
    """Exactly one proof among the form's fields; ``proof()`` gives the service's request key and the value."""

    proof_keys: dict[str, str]  # form field -> the services' proof field (``Factor.proof_field``, ``password``)

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        given = [name for name in self.proof_keys if cleaned.get(name)]
        if len(given) != 1 and not self.errors:
            raise ValidationError("Fill in exactly one of the fields.", code="one_proof")
        return cleaned

    def proof(self) -> tuple[str, Any]:
        name = next(name for name in self.proof_keys if self.cleaned_data.get(name))
        value = self.cleaned_data[name]
        return self.proof_keys[name], value.strip() if isinstance(value, str) and name != "password" else value


class SecondStepForm(ProofForm):
    """The second step of a sign-in: a code from the authenticator app, a recovery code, or a passkey's answer."""

    code = _code_field("Code from your authenticator app")
    recovery_code = _recovery_code_field()
    webauthn = PasskeyAnswerField()
    proof_keys = {
        "code": mfa.TOTP.proof_field,
        "recovery_code": mfa.RECOVERY_CODES.proof_field,
        "webauthn": WEBAUTHN.proof_field,
    }


class EnrolmentForm(forms.Form):
    """The first code of a newly set-up authenticator app."""

    code = _code_field("Code from your authenticator app")

    def clean_code(self) -> str:
        code = (self.cleaned_data.get("code") or "").strip()
        if not code:
            raise ValidationError("Type the 6 digits your authenticator app shows.", code="required")
        return code


class ReauthenticateForm(ProofForm):
    """ "Confirm it's you": the password, a code from the authenticator app, a recovery code, or a passkey's
    answer."""

    password = forms.CharField(
        required=False,
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
    code = _code_field("Or a code from your authenticator app", autofocus=False)
    recovery_code = _recovery_code_field()
    webauthn = PasskeyAnswerField()
    proof_keys = {
        "password": PASSWORD_FIELD,
        "code": mfa.TOTP.proof_field,
        "recovery_code": mfa.RECOVERY_CODES.proof_field,
        "webauthn": WEBAUTHN.proof_field,
    }
