"""Domain errors of the users app; the API handler renders them as {"detail", "code"}."""

from user_service.exceptions import ApplicationError


class InvalidCredentials(ApplicationError):
    default_code = "invalid_credentials"


class TokenInvalid(ApplicationError):
    default_code = "token_not_valid"


class SessionEnded(TokenInvalid):
    default_code = "session_ended"


class UserInactive(TokenInvalid):
    """A valid token of a live session whose user is deactivated or gone."""

    default_code = "user_inactive"


class ServiceAccountInactive(TokenInvalid):
    """A valid service token of a service account that is deactivated or gone."""

    default_code = "service_inactive"


class RegistrationClosed(ApplicationError):
    default_code = "registration_closed"


class NotFound(ApplicationError):
    default_code = "not_found"


class EmailNotVerified(ApplicationError):
    """Login refused until the address is confirmed (REQUIRE_EMAIL_VERIFICATION)."""

    default_code = "email_not_verified"


class InvalidClient(ApplicationError):
    default_code = "invalid_client"


class RevocationUnavailable(ApplicationError):
    """Sessions could not be ended because the revocation store (Redis) did not take the change."""

    default_code = "revocation_unavailable"
