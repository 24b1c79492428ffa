"""Domain errors of the users app; the API handler renders them as {"detail", "code"}."""

from rest_framework import status

from user_service.exceptions import ApplicationError


class InvalidCredentials(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_credentials"


class TokenInvalid(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "token_not_valid"


class SessionEnded(TokenInvalid):
    default_code = "session_ended"


class RegistrationClosed(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "registration_closed"


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


class EmailNotVerified(ApplicationError):
    """Login refused until the address is confirmed (REQUIRE_EMAIL_VERIFICATION)."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "email_not_verified"


class InvalidClient(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_client"
