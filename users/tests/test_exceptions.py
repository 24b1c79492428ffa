"""The exception handler (user_service/exceptions.py): domain errors carry no HTTP status, one table maps them."""

import importlib
import pkgutil

import pytest
from rest_framework import status

import users
from user_service.exceptions import ERROR_STATUSES, ApplicationError, error_status, exception_handler
from users.exceptions import NotFound, SessionEnded, TokenInvalid
from users.services.lockout import AccountLocked
from users.services.people.persons import PersonChangeRefused
from users.services.people.validation import AcademicServiceDown


def _domain_error_classes() -> set[type[ApplicationError]]:
    for module in pkgutil.walk_packages(users.__path__, "users."):
        if ".tests" not in module.name and ".migrations" not in module.name:
            importlib.import_module(module.name)
    found, todo = set(), [ApplicationError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return {cls for cls in found if cls.__module__.startswith("users.")}


def test_every_entry_of_the_table_names_an_application_error():
    for path in ERROR_STATUSES:
        module_name, _, class_name = path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        assert issubclass(cls, ApplicationError), path


def test_domain_errors_carry_no_http_status():
    for cls in _domain_error_classes():
        assert "status_code" not in vars(cls), cls


def test_every_domain_error_of_the_users_app_has_its_own_or_a_parents_entry():
    listed = {path.rpartition(".")[2] for path in ERROR_STATUSES}
    for cls in _domain_error_classes():
        assert any(parent.__name__ in listed for parent in cls.__mro__ if parent is not ApplicationError), cls


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TokenInvalid("bad"), status.HTTP_401_UNAUTHORIZED),
        (SessionEnded("gone"), status.HTTP_401_UNAUTHORIZED),  # from its parent's entry
        (NotFound("no"), status.HTTP_404_NOT_FOUND),
        (PersonChangeRefused("no"), status.HTTP_400_BAD_REQUEST),
        (ApplicationError("plain"), status.HTTP_400_BAD_REQUEST),
    ],
)
def test_the_status_is_the_nearest_entry_in_the_mro(error, expected):
    assert error_status(error) == expected


def test_the_handler_renders_detail_code_and_extra_with_the_mapped_status():
    # Given a lockout error with its wait
    error = AccountLocked("Too many attempts.", extra={"retry_after": 42})

    # When the API's handler renders it
    response = exception_handler(error, {})

    # Then the body is the error's, the status the table's, the wait a header
    assert response.status_code == status.HTTP_429_TOO_MANY_REQUESTS
    assert response.data == {"detail": "Too many attempts.", "code": "locked_out", "retry_after": 42}
    assert response.headers["Retry-After"] == "42"


def test_an_unavailable_dependency_is_a_503_with_retry_after():
    response = exception_handler(AcademicServiceDown("The academic service is unavailable."), {})

    assert response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE
    assert response.data["code"] == "academic_service_unavailable"
    assert response.headers["Retry-After"] == "5"
