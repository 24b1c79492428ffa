"""Django's authentication backend: the username or the e-mail address, checked by the one credential owner."""

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from users.exceptions import EmailNotVerified, InvalidCredentials, MfaRequired
from users.http import client_ip, user_agent
from users.models import CustomUser
from users.services.credentials import Channel
from users.services.lockout import AccountLocked
from users.services.login import password_alone_check


class UsernameOrEmailBackend(ModelBackend):
    """``django.contrib.auth.authenticate()`` (the test client, anything built on it) through ``credentials_check``.

    The admin's sign-in pages call ``users.services.login`` themselves (users/admin_auth/); the API's login is
    ``users.services.login.password_login``. A lockout, an unverified address or an account that needs a second
    factor (this way in cannot ask for one) stops authentication (PermissionDenied).
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: object,
    ) -> CustomUser | None:
        if username is None:
            username = str(kwargs.get(CustomUser.USERNAME_FIELD) or "")
        if not username or password is None:
            return None
        try:
            return password_alone_check(
                identifier=username,
                password=password,
                ip=client_ip(request) if request is not None else None,
                user_agent=user_agent(request) if request is not None else "",
                channel=Channel.DJANGO_AUTH,
            )
        except InvalidCredentials:
            return None
        except (AccountLocked, EmailNotVerified, MfaRequired) as exc:
            raise PermissionDenied(exc.message) from exc
