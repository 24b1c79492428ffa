"""Application error type and the DRF exception handler that turns every failure into clean JSON."""

import logging
from functools import cache
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.utils.module_loading import import_string
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A domain failure reported to the caller: message, machine-readable code, extra fields; no HTTP status.

    The API's HTTP status of each error class is in ``ERROR_STATUSES`` below, the one place that knows it.
    """

    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}


# HTTP status of each domain error class; an error takes the entry of the nearest class in its MRO. Dotted paths,
# as in settings: the domain modules import ApplicationError from here, so importing them here would be a cycle.
ERROR_STATUSES: dict[str, int] = {
    "user_service.exceptions.ApplicationError": status.HTTP_400_BAD_REQUEST,
    "users.exceptions.InvalidCredentials": status.HTTP_401_UNAUTHORIZED,
    "users.exceptions.TokenInvalid": status.HTTP_401_UNAUTHORIZED,
    "users.exceptions.RegistrationClosed": status.HTTP_403_FORBIDDEN,
    "users.exceptions.NotFound": status.HTTP_404_NOT_FOUND,
    "users.exceptions.RevocationUnavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
    "users.exceptions.EmailNotVerified": status.HTTP_403_FORBIDDEN,
    "users.services.account.LinkInvalid": status.HTTP_400_BAD_REQUEST,
    "users.services.lockout.AccountLocked": status.HTTP_429_TOO_MANY_REQUESTS,
    "users.exceptions.InvalidClient": status.HTTP_401_UNAUTHORIZED,
    "users.services.people.roster.RosterRejected": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "users.services.people.persons.PersonChangeRefused": status.HTTP_400_BAD_REQUEST,
    "users.services.people.validation.AcademicServiceDown": status.HTTP_503_SERVICE_UNAVAILABLE,
    "users.exceptions.MfaRequired": status.HTTP_401_UNAUTHORIZED,
    "users.exceptions.MfaTokenInvalid": status.HTTP_401_UNAUTHORIZED,
    "users.exceptions.FactorInvalid": status.HTTP_401_UNAUTHORIZED,
    "users.exceptions.ProofRejected": status.HTTP_400_BAD_REQUEST,
    "users.exceptions.FactorConflict": status.HTTP_409_CONFLICT,
    "users.exceptions.ReauthenticationRequired": status.HTTP_403_FORBIDDEN,
}


@cache
def _statuses_by_class() -> dict[type, int]:
    return {import_string(path): code for path, code in ERROR_STATUSES.items()}


def error_status(exc: ApplicationError) -> int:
    """The HTTP status of a domain error: the ``ERROR_STATUSES`` entry of the nearest class in its MRO."""
    statuses = _statuses_by_class()
    return next(statuses[cls] for cls in type(exc).__mro__ if cls in statuses)


def _validation_error_body(exc: DjangoValidationError):
    if hasattr(exc, "error_dict"):
        return exc.message_dict
    return {"detail": exc.messages[0] if len(exc.messages) == 1 else exc.messages, "code": "invalid"}


def exception_handler(exc, context):
    """Map application, validation and database errors to JSON; never leak a traceback."""
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message, "code": exc.code, **exc.extra}
        status_code = error_status(exc)
        headers = None
        if "retry_after" in exc.extra:
            headers = {"Retry-After": str(exc.extra["retry_after"])}
        elif status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
            headers = {"Retry-After": "5"}
        return Response(body, status=status_code, headers=headers)
    if isinstance(exc, DjangoValidationError):
        return Response(_validation_error_body(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DataError):  # a value the database cannot hold (out of range, NUL byte, ...): the input's fault
        logger.warning("input refused by the database: %s", str(exc).splitlines()[0][:200])
        return Response({"detail": "A value is out of range or malformed.", "code": "invalid"}, status=400)
    if isinstance(exc, OperationalError | InterfaceError):
        logger.error("database unavailable: %s: %s", exc.__class__.__name__, str(exc)[:300])
        body = {"detail": "The service is temporarily unavailable; retry shortly.", "code": "database_unavailable"}
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    if isinstance(exc, SuspiciousOperation):  # Django answers these 400 outside DRF too (handler400)
        logger.warning("suspicious request refused: %s", exc.__class__.__name__)
        too_many = isinstance(exc, TooManyFieldsSent | TooManyFilesSent)
        detail = "Too many parameters or fields." if too_many else "Bad request."
        return Response({"detail": detail, "code": "bad_request"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    from rest_framework.views import exception_handler as drf_exception_handler  # avoids an import cycle

    response = drf_exception_handler(exc, context)
    if response is None:
        request = context.get("request")
        logger.error(
            "unhandled error in %s",
            context.get("view").__class__.__name__,
            exc_info=exc,
            extra={"request_id": getattr(request, "request_id", None)},
        )
        return Response(
            {"detail": "Internal server error.", "code": "server_error"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.APIException) and isinstance(response.data, dict) and "detail" in response.data:
        response.data.setdefault("code", exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code)
    return response


def json_page_not_found(request, exception=None):
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def json_server_error(request):
    return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)


def json_bad_request(request, exception=None):
    return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)


def json_permission_denied(request, exception=None):
    return JsonResponse({"detail": "Permission denied.", "code": "permission_denied"}, status=403)
