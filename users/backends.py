"""Login backend: the username or the e-mail address, both matched case-insensitively."""

from django.contrib.auth.backends import ModelBackend
from django.db.models import Q

from users.models import CustomUser


def user_for_login(identifier: str) -> CustomUser | None:
    """The account a login identifier (username or e-mail, any case) names, with its profile joined."""
    from users.selectors import users_with_profiles

    lookup = Q(username__iexact=identifier)
    if "@" in identifier:
        lookup |= Q(email__iexact=identifier)
    return users_with_profiles().filter(lookup).order_by("id").first()


class UsernameOrEmailBackend(ModelBackend):
    """Used by the Django admin's login form; the API's login is ``users.services.auth.user_login``."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(CustomUser.USERNAME_FIELD)
        if not username or password is None:
            return None
        user = user_for_login(username)
        if user is None:
            # Same cost as a real check, so timing does not reveal whether the account exists.
            CustomUser().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
