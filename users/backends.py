"""Login backend: the username or the e-mail address, both matched case-insensitively."""

from django.contrib.auth.backends import ModelBackend
from django.db.models import Q

from users.models import CustomUser


class UsernameOrEmailBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(CustomUser.USERNAME_FIELD)
        if not username or password is None:
            return None
        lookup = Q(username__iexact=username)
        if "@" in username:
            lookup |= Q(email__iexact=username)
        user = CustomUser.objects.filter(lookup).order_by("id").first()
        if user is None:
            # Same cost as a real check, so timing does not reveal whether the account exists.
            CustomUser().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
