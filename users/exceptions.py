"""Domain errors of the users app; the API handler renders them as {"detail", "code"}."""

from rest_framework import status

from user_service.exceptions import ApplicationError, ServiceUnavailable


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


class RevocationUnavailable(ServiceUnavailable):
    """Sessions could not be ended because the revocation store (Redis) did not take the change."""

    default_code = "revocation_unavailable"
