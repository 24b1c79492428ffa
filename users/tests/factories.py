"""Test data builders (factory_boy); users go through the service layer so they always have their profile."""

from typing import Any

import factory

from conftest import TEST_PASSWORD
from users.models import CustomUser, UserType
from users.services.people.create import user_rows_create


class UserFactory(factory.django.DjangoModelFactory):
    """``UserFactory(user_type=UserType.HOD, ...)``: a person of that role with its profile, no side effects.

    Built by ``user_rows_create``; any other keyword (``is_active``, ``profile``, ...) goes to it;
    ``password=None`` or ``""`` makes an account without a usable password (an invited person).
    """

    class Meta:
        model = CustomUser

    user_type = UserType.STUDENT
    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@school.test")
    password = TEST_PASSWORD
    first_name = factory.Sequence(lambda n: f"First{n}")
    last_name = factory.Sequence(lambda n: f"Last{n}")

    @classmethod
    def _create(cls, model_class: type[CustomUser], *args: Any, **kwargs: Any) -> CustomUser:
        return user_rows_create(**kwargs)
