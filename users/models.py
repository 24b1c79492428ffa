"""Data model of the identity service: users, their role profiles and their login sessions."""

import uuid
from collections.abc import Collection
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Lower
from django.utils import timezone


class UserType(models.IntegerChoices):
    HOD = 1, "HOD"
    STAFF = 2, "Staff"
    STUDENT = 3, "Student"


ROLE_NAMES: dict[int, str] = {UserType.HOD: "hod", UserType.STAFF: "staff", UserType.STUDENT: "student"}


class CustomUserManager(UserManager["CustomUser"]):
    """Builds rows: a user with the profile of its role, in one transaction.

    What a creation writes besides (field-named errors for a taken username or e-mail, event, audit record,
    e-mails) is the creation service's (``users.services.people.create``); ``createsuperuser`` calls it.
    """

    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> "CustomUser":
        return self.get(**{f"{self.model.USERNAME_FIELD}__iexact": username})

    def create_user(
        self, username: str, email: str | None = None, password: str | None = None, **extra_fields: Any
    ) -> "CustomUser":
        """The user and its role's profile (``user_type``, default Student; ``profile``: the profile's fields).

        No password: unusable. HODs are staff (they use the admin).
        """
        user_type = UserType(int(extra_fields.pop("user_type", UserType.STUDENT)))
        profile = extra_fields.pop("profile", None)
        user = self.model(username=username, email=email or "", user_type=user_type, **extra_fields)
        if user_type == UserType.HOD:
            user.is_staff = True
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean(exclude=["password"], validate_unique=False, validate_constraints=False)
        with transaction.atomic(using=self.db):
            try:
                user.save(using=self.db)
            except IntegrityError as exc:  # a concurrent insert won the race on username or e-mail
                raise ValidationError({"username": ["A user with this username or e-mail already exists."]}) from exc
            profile_row = PROFILE_MODELS[user_type](user=user, **(profile or {}))
            profile_row.full_clean()
            profile_row.save(using=self.db)
        return user

    def create_superuser(
        self, username: str, email: str | None = None, password: str | None = None, **extra_fields: Any
    ) -> "CustomUser":
        """An HOD with its profile, admin rights and every permission (rows only; see the class docstring)."""
        extra_fields.setdefault("user_type", UserType.HOD)
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        if extra_fields["user_type"] != UserType.HOD:
            raise ValueError("A superuser is an HOD (user_type=1).")
        return self.create_user(username, email, password, **extra_fields)


class CustomUser(AbstractUser):
    user_type = models.PositiveSmallIntegerField(choices=UserType.choices, default=UserType.STUDENT, db_index=True)
    email = models.EmailField("email address", max_length=254)
    email_verified = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[CustomUserManager] = CustomUserManager()

    REQUIRED_FIELDS: ClassVar[list[str]] = ["email"]

    class Meta:
        verbose_name = "user"
        constraints = [
            models.UniqueConstraint(Lower("email"), name="users_user_email_ci_unique", condition=~models.Q(email="")),
            models.UniqueConstraint(Lower("username"), name="users_user_username_ci_unique"),
        ]
        indexes = [
            models.Index(fields=["is_active", "user_type"], name="users_user_active_type_idx"),
            models.Index(fields=["date_joined"], name="users_user_date_joined_idx"),
        ]

    @property
    def role(self) -> str:
        return ROLE_NAMES[UserType(self.user_type)]

    def clean(self) -> None:
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email).strip()


class ProfileBase(models.Model):
    user = models.OneToOneField(CustomUser, on_delete=models.CASCADE, related_name="%(class)s_profile")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = models.Manager()  # what every role's profile has; declared here so code typed ProfileBase can query

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.__class__.__name__} of {self.user_id}"

    def clean_fields(self, exclude: Collection[str] | None = None) -> None:
        """Django's checks, plus what it skips for ``blank=True`` fields: null where the column is NOT NULL.

        Django treats None as "empty" and skips a blank field's checks, so a None would reach the database
        as a NOT NULL violation. A text field given something other than text (a list, an object) would
        be stored as its ``str()``; it is refused as well.
        """
        errors: dict[str, list[str]] = {}
        for field in self._meta.concrete_fields:
            if not field.editable or field.is_relation or field.primary_key or (exclude and field.name in exclude):
                continue
            value = getattr(self, field.attname)
            if value is None and not field.null:
                errors[field.name] = [str(field.error_messages["null"])]
            elif (
                value is not None
                and isinstance(field, models.CharField | models.TextField)
                and not isinstance(value, str)
            ):
                errors[field.name] = ["Enter text."]
        try:
            super().clean_fields(exclude=[*(exclude or ()), *errors])
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if errors:
            raise ValidationError(errors)


class AdminHOD(ProfileBase):
    department = models.CharField(max_length=120, blank=True)
    phone_number = models.CharField(max_length=20, blank=True)

    class Meta:
        verbose_name = "HOD profile"


class Staff(ProfileBase):
    address = models.TextField(blank=True)
    phone_number = models.CharField(max_length=20, blank=True)
    employee_id = models.CharField(max_length=32, null=True, blank=True, unique=True)
    department = models.CharField(max_length=120, blank=True, db_index=True)
    designation = models.CharField(max_length=120, blank=True)
    date_of_joining = models.DateField(null=True, blank=True)

    class Meta:
        verbose_name = "staff profile"
        verbose_name_plural = "staff profiles"


class Gender(models.TextChoices):
    MALE = "M", "Male"
    FEMALE = "F", "Female"
    OTHER = "O", "Other"


class Student(ProfileBase):
    gender = models.CharField(max_length=1, choices=Gender.choices, blank=True)
    date_of_birth = models.DateField(null=True, blank=True)
    address = models.TextField(blank=True)
    phone_number = models.CharField(max_length=20, blank=True)
    student_id = models.CharField(max_length=32, null=True, blank=True, unique=True)
    guardian_name = models.CharField(max_length=150, blank=True)
    guardian_phone = models.CharField(max_length=20, blank=True)
    profile_pic = models.CharField(max_length=255, blank=True)
    course_id = models.PositiveIntegerField(null=True, blank=True, db_index=True)
    session_year_id = models.PositiveIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = "student profile"


PROFILE_MODELS: dict[int, type[ProfileBase]] = {
    UserType.HOD: AdminHOD,
    UserType.STAFF: Staff,
    UserType.STUDENT: Student,
}
PROFILE_RELATED_NAMES: dict[int, str] = {
    UserType.HOD: "adminhod_profile",
    UserType.STAFF: "staff_profile",
    UserType.STUDENT: "student_profile",
}


class SessionEndReason(models.TextChoices):
    LOGOUT = "logout", "Logout"
    REVOKED = "revoked", "Revoked"
    PASSWORD_CHANGED = "password_changed", "Password changed"
    REFRESH_REUSE = "refresh_reuse", "Refresh token reused"
    DEACTIVATED = "deactivated", "User deactivated"
    EXPIRED = "expired", "Expired"
    MFA_RESET = "mfa_reset", "Second factors reset"
    CODE_REUSE = "code_reuse", "Authorization code reused"


class UserSessionQuerySet(models.QuerySet):
    def active(self):
        return self.filter(ended_at__isnull=True, expires_at__gt=timezone.now())


class UserSession(models.Model):
    """One login: every token issued for it carries its id as the ``sid`` claim."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(CustomUser, on_delete=models.CASCADE, related_name="sessions")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, choices=SessionEndReason.choices, blank=True)
    amr = models.JSONField(
        default=list, blank=True, help_text="How the person authenticated for this login (RFC 8176 values)."
    )
    auth_time = models.DateTimeField(null=True, blank=True, help_text="When the person authenticated for this login.")
    reauthenticated_at = models.DateTimeField(
        null=True, blank=True, help_text="The latest reauthenticate/ of this session (step-up)."
    )

    objects = UserSessionQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(
                fields=["user", "-created_at"],
                name="users_session_user_open_idx",
                condition=models.Q(ended_at__isnull=True),
            ),
            models.Index(
                fields=["expires_at"], name="users_session_expires_idx", condition=models.Q(ended_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"session {self.id} of user {self.user_id}"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None and self.expires_at > timezone.now()


class ServiceAccount(models.Model):
    """A sibling service's client credentials; only a hash of the secret is stored."""

    name = models.CharField(max_length=120)
    client_id = models.CharField(max_length=64, unique=True)
    secret_hash = models.CharField(max_length=255)
    scopes = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"


class SecurityEvent(models.Model):
    """Audit trail of security-relevant actions."""

    class Type(models.TextChoices):
        LOGIN_SUCCEEDED = "login_succeeded"
        LOGIN_FAILED = "login_failed"
        LOCKOUT = "lockout"
        LOGOUT = "logout"
        REFRESH_REUSE = "refresh_reuse"
        PASSWORD_CHANGED = "password_changed"  # noqa: S105 - an event name
        PASSWORD_RESET = "password_reset"  # noqa: S105 - an event name
        EMAIL_VERIFIED = "email_verified"
        SESSION_REVOKED = "session_revoked"
        USER_CREATED = "user_created"
        USER_DEACTIVATED = "user_deactivated"
        USER_REACTIVATED = "user_reactivated"
        ROLE_CHANGED = "role_changed"
        USER_UPDATED = "user_updated"
        EMAIL_CHANGED = "email_changed"
        SERVICE_TOKEN_ISSUED = "service_token_issued"  # noqa: S105 - an event name
        MFA_ENROLLED = "mfa_enrolled"
        MFA_REMOVED = "mfa_removed"
        MFA_USED = "mfa_used"
        MFA_FAILED = "mfa_failed"
        MFA_RESET = "mfa_reset"
        RECOVERY_CODES_GENERATED = "recovery_codes_generated"
        REAUTHENTICATED = "reauthenticated"

    type = models.CharField(max_length=40, choices=Type.choices)
    user = models.ForeignKey(CustomUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.ForeignKey(CustomUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at"], name="users_secevent_user_idx"),
            models.Index(fields=["type", "-created_at"], name="users_secevent_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} user={self.user_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class EventType(models.TextChoices):
    """The events sent to sibling services (``OutboxMessage.topic`` of an event); see users.services.events."""

    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - an event name
    SESSION_REVOKED = "session.revoked"
    USER_MFA_CHANGED = "user.mfa_changed"


class LockoutCounter(models.Model):
    """Failed-attempt state of one lockout subject (an account or a client IP); the protocol is in
    ``users/services/lockout.py``, which alone writes these rows.

    Times are epoch seconds, so the protocol's single-statement updates compare them alike on PostgreSQL
    and SQLite; ``subject`` is a hash, never a raw identifier or address.
    """

    subject = models.CharField(max_length=80, primary_key=True)
    failures = models.PositiveIntegerField(default=0, help_text="Failures in the current window.")
    window_started = models.FloatField(default=0)
    in_flight = models.PositiveIntegerField(default=0, help_text="Attempts reserved and not yet settled.")
    in_flight_since = models.FloatField(default=0, help_text="When the latest attempt was reserved.")
    locked_until = models.FloatField(default=0)
    level = models.PositiveSmallIntegerField(default=0, help_text="Lockouts in a row; each doubles the wait.")
    last_locked_at = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"lockout {self.subject}: {self.failures} failures, locked until {self.locked_until:.0f}"


class OutboxMessage(models.Model):
    """An e-mail or event written in the transaction that causes it, delivered after commit."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        EVENT = "event"
        LOGOUT = "logout"  # an OpenID Connect back-channel logout token for one client

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    topic = models.CharField(max_length=64, help_text="E-mail template name or event type.")
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    available_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["available_at"], name="users_outbox_pending_idx", condition=models.Q(status="pending")
            ),
            models.Index(fields=["status", "sent_at"], name="users_outbox_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.topic} {self.status}"


class TOTPDevice(models.Model):
    """A person's authenticator-app factor (RFC 6238): pending until confirmed with a code.

    The secret is stored encrypted (``users.services.mfa.crypto``); ``last_used_step`` refuses replays.
    """

    user = models.OneToOneField(CustomUser, on_delete=models.CASCADE, related_name="totp_device")
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_used_step = models.BigIntegerField(
        default=0, help_text="The latest time step accepted; codes of it and of earlier steps are refused."
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "TOTP authenticator"

    def __str__(self) -> str:
        state = "confirmed" if self.confirmed_at else "pending"
        return f"TOTP of user {self.user_id} ({state})"


class RecoveryCode(models.Model):
    """One single-use recovery code, stored as a salted hash; the code itself is shown once."""

    user = models.ForeignKey(CustomUser, on_delete=models.CASCADE, related_name="recovery_codes")
    salt = models.CharField(max_length=32)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user"], name="users_recovery_unused_idx", condition=models.Q(used_at__isnull=True))
        ]

    def __str__(self) -> str:
        return f"recovery code {self.pk} of user {self.user_id}"


class MfaChallenge(models.Model):
    """The second step of a login that a first factor opened: its ``mfa_token``, stored as a hash.

    Lives in the database (not Redis), so it holds through cache faults; used once, then spent.
    """

    class Purpose(models.TextChoices):
        FACTOR = "factor", "Second factor"
        ENROLMENT = "enrolment", "Enrol a factor, then the second factor"

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(CustomUser, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    amr = models.JSONField(default=list, help_text="The factors the first step proved (RFC 8176 values).")
    channel = models.CharField(max_length=32)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.purpose} challenge {self.pk} of user {self.user_id}"


class WebAuthnCredential(models.Model):
    """A person's passkey or security key (WebAuthn): its public key, never a secret. Several per person, named.

    ``sign_count`` is the authenticator's counter at its last use: an assertion that does not move it forward (when
    the authenticator counts) is a replay or a cloned key and is refused.
    """

    user = models.ForeignKey(CustomUser, on_delete=models.CASCADE, related_name="webauthn_credentials")
    name = models.CharField(max_length=64)
    credential_id = models.CharField(max_length=1400, unique=True, help_text="base64url of the credential's raw id.")
    user_handle = models.BinaryField(max_length=64, help_text="The opaque user id the authenticator holds.")
    public_key = models.BinaryField(help_text="The COSE public key.")
    sign_count = models.BigIntegerField(default=0)
    transports = models.JSONField(default=list, blank=True)
    aaguid = models.CharField(max_length=36, blank=True)
    discoverable = models.BooleanField(
        default=False, help_text="Whether the authenticator said it stores the credential (credProps)."
    )
    backed_up = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "WebAuthn credential"

    def __str__(self) -> str:
        return f"passkey {self.name!r} of user {self.user_id}"


class WebAuthnChallenge(models.Model):
    """A WebAuthn ceremony in progress: the challenge the server handed out, stored as its SHA-256, single use.

    Bound to what opened it: a person (registration, reauthentication), a pending login (``mfa_challenge``, the
    second step) or nobody yet (a passwordless sign-in, which learns the person from the credential; ``session_id``
    then holds the asking browser's id when the way in keeps one, as the sign-in pages do).
    """

    class Purpose(models.TextChoices):
        REGISTER = "register", "Register a credential"
        SECOND_FACTOR = "second_factor", "Second step of a login"
        PASSWORDLESS = "passwordless", "Passwordless sign-in"
        REAUTHENTICATE = "reauthenticate", "Reauthentication"

    challenge_hash = models.CharField(max_length=64, unique=True)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    user = models.ForeignKey(CustomUser, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    mfa_challenge = models.ForeignKey(MfaChallenge, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    session_id = models.UUIDField(null=True, blank=True)
    user_handle = models.BinaryField(max_length=64, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.purpose} WebAuthn challenge {self.pk}"


class OidcClient(models.Model):
    """This service's own attributes of an OpenID Connect client; the protocol's are django-oauth-toolkit's
    ``Application`` (redirect URIs, client type, secret hash, ``skip_authorization`` for first-party clients,
    ``post_logout_redirect_uris``)."""

    application = models.OneToOneField(
        "oauth2_provider.Application", on_delete=models.CASCADE, related_name="oidc_client"
    )
    backchannel_logout_uri = models.URLField(
        max_length=512, blank=True, help_text="OpenID Connect Back-Channel Logout 1.0: where logout tokens are posted."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "OpenID Connect client settings"
        verbose_name_plural = "OpenID Connect client settings"

    def __str__(self) -> str:
        return f"settings of client {self.application_id}"


class OidcAuthorization(models.Model):
    """One authorization code, the login session it was issued in, and (through ``id``, the token family of the
    refresh tokens it led to) everything the client got for it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code_checksum = models.CharField(max_length=64, unique=True)
    application = models.ForeignKey("oauth2_provider.Application", on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(UserSession, on_delete=models.CASCADE, related_name="oidc_authorizations")
    created_at = models.DateTimeField(default=timezone.now)
    exchanged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["session", "application"], name="users_oidcauth_session_app_idx")]

    def __str__(self) -> str:
        return f"authorization {self.id} of session {self.session_id}"


class OidcConsent(models.Model):
    """The scopes a person allowed one client to have; asked again only for a scope outside them."""

    user = models.ForeignKey(CustomUser, on_delete=models.CASCADE, related_name="oidc_consents")
    application = models.ForeignKey("oauth2_provider.Application", on_delete=models.CASCADE, related_name="+")
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "application"], name="users_oidcconsent_user_app_unique")
        ]

    def __str__(self) -> str:
        return f"consent of user {self.user_id} to client {self.application_id}"
