"""The Django admin as HODs use it: only active HOD accounts may enter, through the one owner of logging in."""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from users.exceptions import EmailNotVerified, InvalidCredentials
from users.http import client_ip, user_agent
from users.models import UserType
from users.services.credentials import Channel
from users.services.lockout import AccountLocked
from users.services.login import LoginPending, password_login


def hod_may_enter(user: AbstractBaseUser | AnonymousUser) -> bool:
    """The admin's own rule: active staff accounts of HODs."""
    return bool(
        user.is_active and getattr(user, "is_staff", False) and getattr(user, "user_type", None) == UserType.HOD
    )


class HODLoginForm(AdminAuthenticationForm):
    """The admin's login form: ``users.services.login`` with the admin's rule, so the lockout, the second-factor
    policy and the audit are the API's. An account that needs a second step is refused until this page can take it."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked": "Too many failed sign-in attempts. Try again in %(seconds)s seconds.",
        "second_factor": "This account signs in with a second factor, which this page cannot ask for yet.",
    }
    retry_after: int | None = None

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
            raise ValidationError(
                self.error_messages["locked"], code="locked", params={"seconds": self.retry_after}
            ) from exc
        except EmailNotVerified as exc:
            raise ValidationError(exc.message, code=exc.code) from exc
        if isinstance(outcome, LoginPending):
            raise ValidationError(self.error_messages["second_factor"], code=outcome.step.value)
        self.user_cache = outcome.user
        return self.cleaned_data


class HODAdminSite(admin.AdminSite):
    site_header = "User Management Service"
    site_title = "User Management"
    login_form = HODLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        return hod_may_enter(request.user)

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """The login page; a locked-out sign-in is answered 429 with ``Retry-After``, like the API."""
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        if isinstance(form, HODLoginForm) and form.retry_after:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response
