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


class MfaRequired(ApplicationError):
    """The first factor checked out and a second step follows; ``extra`` carries the ``mfa_token`` and ``methods``."""

    default_code = "mfa_required"


class MfaEnrolmentRequired(MfaRequired):
    """The first factor checked out, the person's role needs a second factor and they have none yet."""

    default_code = "mfa_enrolment_required"


class MfaTokenInvalid(ApplicationError):
    """An ``mfa_token`` that is unknown, expired, already used, or not good for this step."""

    default_code = "mfa_token_invalid"


class FactorInvalid(ApplicationError):
    """The second step of a login whose code (or assertion) does not check out: wrong, expired or replayed."""

    default_code = "invalid_code"


class ProofRejected(ApplicationError):
    """A signed-in person's password or code that does not check out (confirming an enrolment, reauthenticating)."""

    default_code = "invalid_code"


class FactorConflict(ApplicationError):
    """The factors are not in the state the request needs (already enrolled, nothing pending, none enabled)."""

    default_code = "mfa_conflict"


class ReauthenticationRequired(ApplicationError):
    """A sensitive change without a recent authentication: ``reauthenticate/`` first."""

    default_code = "reauthentication_required"
