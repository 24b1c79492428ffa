"""Test data builders; users go through the service layer so they always have their profile."""

import itertools

from users.models import CustomUser

_seq = itertools.count(1)


def make_user(*, user_type: int = 3, username: str | None = None, email: str | None = None, password=None, **fields):
    from conftest import TEST_PASSWORD
    from users.services.people.create import user_rows_create

    n = next(_seq)
    username = username or f"user{n}"
    return user_rows_create(
        username=username,
        email=email if email is not None else f"{username}@school.test",
        password=TEST_PASSWORD if password is None else password,
        user_type=user_type,
        first_name=fields.pop("first_name", f"First{n}"),
        last_name=fields.pop("last_name", f"Last{n}"),
        **fields,
    )


def reload(user: CustomUser) -> CustomUser:
    return CustomUser.objects.get(pk=user.pk)
