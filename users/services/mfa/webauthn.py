"""Passkeys and security keys (WebAuthn, checked by py_webauthn): registration, and assertions as a second factor,
as a passwordless first factor and as a reauthentication.

Every ceremony is two calls: the options, holding a fresh 256-bit challenge, then the authenticator's answer. The
challenge is stored server-side as its SHA-256 (``WebAuthnChallenge``, PostgreSQL, like the ``mfa_token``), bound
to what asked for it (the person registering, the pending login, the session reauthenticating; for a passwordless
sign-in the browser that asked, when the way in keeps an id in it, else nobody yet), lives ``CHALLENGE_SECONDS``
and is spent by one conditional UPDATE before anything else is checked: an answer is tried once, right or wrong.
The answer names its challenge inside ``clientDataJSON``; that is how it is found, so no other handle travels
between the two calls.

What is refused: an origin not in ``WEBAUTHN_ORIGINS`` or a relying-party id other than ``WEBAUTHN_RP_ID``; an
authenticator that did not verify the user (PIN or biometric: user verification is required everywhere, which is
what lets a passkey count as two factors); a credential that is not the person's; and an assertion whose signature
counter does not move past the stored one (a replayed answer or a cloned key), the counter advancing through a
conditional UPDATE so two requests cannot both use one value.
"""

import base64
import binascii
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from users.exceptions import FactorConflict, NotFound, ProofRejected
from users.models import PROFILE_RELATED_NAMES, CustomUser, MfaChallenge, WebAuthnChallenge, WebAuthnCredential
from users.services.mfa import recovery
from users.services.mfa.changes import FACTORS_CHANGED_TEMPLATE, Change, mfa_changed
from users.services.mfa.factors import FactorContext, factor_register, factors_confirmed

CHALLENGE_SECONDS = 180  # long enough to find a key and touch it; the options' timeout says the same
CREDENTIALS_PER_PERSON = 20
DEFAULT_NAME = "Passkey"
PASSWORDLESS_AMR = ("hwk", "user", "mfa")  # a key held, the user verified on it: two factors (RFC 8176)
Purpose = WebAuthnChallenge.Purpose


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Bytes of base64url ``text`` (padding optional); ``ValueError`` when it is not base64url."""
    if not isinstance(text, str) or not text.isascii() or "=" in text.rstrip("="):
        raise ValueError("not base64url")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def _hash(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def _challenge_new(*, purpose: str, **binding: Any) -> bytes:
    challenge = secrets.token_bytes(32)
    now = timezone.now()
    WebAuthnChallenge.objects.create(
        challenge_hash=_hash(challenge),
        purpose=purpose,
        created_at=now,
        expires_at=now + timedelta(seconds=CHALLENGE_SECONDS),
        **binding,
    )
    return challenge


def _client_challenge(credential: dict) -> bytes | None:
    """The challenge the authenticator's answer signed for (from its ``clientDataJSON``), None if unreadable."""
    try:
        client_data = json.loads(b64url_decode(credential["response"]["clientDataJSON"]))
        return b64url_decode(client_data["challenge"])
    except (KeyError, TypeError, ValueError):
        return None


def _live_challenges(challenge: bytes, *, purpose: str, **binding: Any) -> QuerySet[WebAuthnChallenge]:
    return WebAuthnChallenge.objects.filter(
        challenge_hash=_hash(challenge), purpose=purpose, used_at__isnull=True, expires_at__gt=timezone.now(), **binding
    )


def _challenge_take(credential: dict, *, purpose: str, **binding: Any) -> tuple[bytes, WebAuthnChallenge] | None:
    """Spend the live challenge of ``purpose`` and ``binding`` that ``credential`` answers, and return it with its
    row; None if there is none."""
    challenge = _client_challenge(credential)
    if challenge is None:
        return None
    live = _live_challenges(challenge, purpose=purpose, **binding)
    row = live.first()
    if row is None or live.filter(pk=row.pk).update(used_at=timezone.now()) != 1:
        return None
    return challenge, row


def _challenge_spend(credential: dict, *, purpose: str, **binding: Any) -> bytes | None:
    """As ``_challenge_take`` for a caller that needs only the challenge: one conditional UPDATE (the hash is
    unique, so it spends at most one row, and only one of simultaneous answers spends it)."""
    challenge = _client_challenge(credential)
    if challenge is None or _live_challenges(challenge, purpose=purpose, **binding).update(used_at=timezone.now()) != 1:
        return None
    return challenge


def challenges_prune(*, batch_size: int) -> int:
    """Delete expired or spent ceremonies, at most ``batch_size``; returns the count."""
    done = WebAuthnChallenge.objects.filter(Q(expires_at__lte=timezone.now()) | Q(used_at__isnull=False))
    ids = list(done.values_list("pk", flat=True)[:batch_size])
    return WebAuthnChallenge.objects.filter(pk__in=ids).delete()[0] if ids else 0


def _descriptors(user: CustomUser) -> list[PublicKeyCredentialDescriptor]:
    rows = WebAuthnCredential.objects.filter(user=user).values_list("credential_id", "transports")
    return [
        PublicKeyCredentialDescriptor(
            id=b64url_decode(credential_id),
            transports=[
                AuthenticatorTransport(t) for t in transports if t in AuthenticatorTransport._value2member_map_
            ],
        )
        for credential_id, transports in rows
    ]


def _options(options: Any) -> dict[str, Any]:
    """The options as the browser's ``PublicKeyCredential.parseCreationOptionsFromJSON`` (or request) takes them."""
    return json.loads(options_to_json(options))


# --- Registration --------------------------------------------------------------------------------------------------


def registration_options(*, user: CustomUser) -> dict[str, Any]:
    """Options for ``navigator.credentials.create()``: a new discoverable credential, user verification required."""
    if WebAuthnCredential.objects.filter(user=user).count() >= CREDENTIALS_PER_PERSON:
        raise FactorConflict(
            f"You have {CREDENTIALS_PER_PERSON} passkeys already; remove one first.", code="webauthn_limit"
        )
    existing = WebAuthnCredential.objects.filter(user=user).values_list("user_handle", flat=True).first()
    user_handle = bytes(existing) if existing else secrets.token_bytes(32)
    challenge = _challenge_new(purpose=Purpose.REGISTER, user=user, user_handle=user_handle)
    options = generate_registration_options(
        rp_id=settings.WEBAUTHN_RP_ID,
        rp_name=settings.WEBAUTHN_RP_NAME,
        user_id=user_handle,
        user_name=user.email or user.get_username(),
        user_display_name=user.get_full_name() or user.get_username(),
        challenge=challenge,
        timeout=CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.REQUIRED
        ),
        exclude_credentials=_descriptors(user),
    )
    # credProps: the browser says whether the key stores the credential (usable for a passwordless sign-in)
    return {**_options(options), "extensions": {"credProps": True}}


@dataclass(frozen=True)
class Registered:
    credential: WebAuthnCredential
    recovery_codes: list[str]


def registration_verify(
    *, user: CustomUser, credential: dict[str, Any], name: str = "", ip: str | None = None, user_agent: str = ""
) -> Registered:
    """Check the authenticator's answer to ``registration_options`` and keep the new credential.

    ``ProofRejected`` for an answer that does not check out (wrong origin, no user verification, a challenge not
    handed to this person, used or expired); a person's first factor also gets the recovery codes.
    """
    taken = _challenge_take(credential, purpose=Purpose.REGISTER, user=user)
    if taken is None:
        raise ProofRejected(
            "This passkey answers no registration in progress (expired or used); ask for new options.",
            code="webauthn_challenge_invalid",
        )
    challenge, row = taken
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=settings.WEBAUTHN_RP_ID,
            expected_origin=list(settings.WEBAUTHN_ORIGINS),
            require_user_verification=True,
        )
    except Exception as exc:  # hostile input makes the parsers (CBOR, ASN.1, X.509) raise all sorts
        message = str(exc) if isinstance(exc, WebAuthnException) else "the answer is malformed"
        raise ProofRejected(f"The passkey was not accepted: {message}", code="webauthn_invalid") from exc
    credential_id = b64url(verified.credential_id)
    extensions = credential.get("clientExtensionResults") or {}
    cred_props = extensions.get("credProps") if isinstance(extensions, dict) else None
    with transaction.atomic():
        if WebAuthnCredential.objects.filter(credential_id=credential_id).exists():
            raise FactorConflict("This passkey is registered already.", code="webauthn_already_registered")
        first = not factors_confirmed(user)
        saved = WebAuthnCredential.objects.create(
            user=user,
            name=(name or "").strip()[:64] or DEFAULT_NAME,
            credential_id=credential_id,
            user_handle=bytes(row.user_handle or b""),
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=[str(t) for t in credential["response"].get("transports") or [] if isinstance(t, str)][:8],
            aaguid=str(verified.aaguid)[:36],
            discoverable=bool(isinstance(cred_props, dict) and cred_props.get("rk") is True),
            backed_up=verified.credential_backed_up,
        )
        codes = recovery.recovery_codes_issue_first(user=user) if first else []
        mfa_changed(
            user=user,
            change=Change.ENROLLED,
            method=WEBAUTHN.name,
            ip=ip,
            user_agent=user_agent,
            data={"credential": saved.pk, "name": saved.name},
            email=FACTORS_CHANGED_TEMPLATE,
        )
    return Registered(credential=saved, recovery_codes=codes)


@transaction.atomic
def credential_remove(*, user: CustomUser, credential_pk: int, ip: str | None = None, user_agent: str = "") -> None:
    """Remove one of the person's passkeys; the last factor takes the recovery codes along."""
    saved = WebAuthnCredential.objects.select_for_update().filter(user=user, pk=credential_pk).first()
    if saved is None:
        raise NotFound("You have no passkey with this id.")
    saved.delete()
    data: dict[str, Any] = {"credential": credential_pk, "name": saved.name}
    if not factors_confirmed(user):
        data["recovery_codes_removed"] = recovery.RECOVERY_CODES.remove_all(user)
    mfa_changed(
        user=user,
        change=Change.REMOVED,
        method=WEBAUTHN.name,
        ip=ip,
        user_agent=user_agent,
        data=data,
        email=FACTORS_CHANGED_TEMPLATE,
    )


# --- Assertions ----------------------------------------------------------------------------------------------------


def _authentication_options(*, user: CustomUser | None, **binding: Any) -> dict[str, Any]:
    challenge = _challenge_new(user=user, **binding)
    options = generate_authentication_options(
        rp_id=settings.WEBAUTHN_RP_ID,
        challenge=challenge,
        timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=_descriptors(user) if user is not None else [],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return _options(options)


def second_factor_options(*, challenge: MfaChallenge) -> dict[str, Any]:
    """Options for the second step of the login that ``challenge`` (its ``mfa_token``) holds."""
    if not WebAuthnCredential.objects.filter(user=challenge.user).exists():
        raise FactorConflict("This account has no passkey; use another method.", code="webauthn_not_enrolled")
    return _authentication_options(user=challenge.user, purpose=Purpose.SECOND_FACTOR, mfa_challenge=challenge)


def passwordless_options(*, browser_binding: str | None = None) -> dict[str, Any]:
    """Options for a passwordless sign-in: no account named, the authenticator offers its discoverable ones.

    ``browser_binding`` (a random id a way in keeps in the asking browser, as the sign-in pages do in a signed
    cookie) binds the challenge to that browser: only an answer sent with the same id spends it
    (``passkey_login``'s ``browser_binding``). The API's clients hold no such id; their challenges have none.
    """
    return _authentication_options(user=None, purpose=Purpose.PASSWORDLESS, session_id=browser_binding)


def reauthentication_options(*, user: CustomUser, session_id: str) -> dict[str, Any]:
    """Options for a signed-in person confirming it is them, in the session ``session_id``: an API session's id, or
    for a way in without one (the admin) an id its own session keeps (``reauth.reauthenticate``'s
    ``ceremony_session_id``)."""
    if not WebAuthnCredential.objects.filter(user=user).exists():
        raise FactorConflict("You have no passkey; use your password or a code.", code="webauthn_not_enrolled")
    return _authentication_options(user=user, purpose=Purpose.REAUTHENTICATE, session_id=session_id)


def credential_named(credential: dict[str, Any]) -> WebAuthnCredential | None:
    """The stored credential an assertion names (its ``rawId``), with its person and their profile; None if
    unknown."""
    raw_id = credential.get("rawId") if isinstance(credential, dict) else None
    if not isinstance(raw_id, str) or len(raw_id) > 1400:
        return None
    people = [f"user__{name}" for name in PROFILE_RELATED_NAMES.values()]
    return WebAuthnCredential.objects.select_related("user", *people).filter(credential_id=raw_id).first()


def assertion_check(
    *,
    credential: dict[str, Any],
    user: CustomUser | None,
    purpose: str,
    named: WebAuthnCredential | None = None,
    **binding: Any,
) -> bool:
    """Whether ``credential`` (an assertion) answers the live challenge of ``purpose``/``binding`` with a passkey of
    ``user`` (for a passwordless sign-in: of the person whose user handle it returns). Spends the challenge first,
    and advances the credential's counter when it checks out. ``named``: the caller's ``credential_named`` of this
    assertion, if it has read it already (its counter is compared again when advanced, so it is never stale)."""
    spent = _challenge_spend(credential, purpose=purpose, **binding)
    saved = named or credential_named(credential)
    if spent is None or saved is None or (user is not None and saved.user_id != user.pk):
        return False
    if purpose == Purpose.PASSWORDLESS:
        handle = (credential.get("response") or {}).get("userHandle")
        try:
            if not handle or b64url_decode(handle) != bytes(saved.user_handle):
                return False
        except ValueError:
            return False
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=spent,
            expected_rp_id=settings.WEBAUTHN_RP_ID,
            expected_origin=list(settings.WEBAUTHN_ORIGINS),
            credential_public_key=bytes(saved.public_key),
            credential_current_sign_count=saved.sign_count,
            require_user_verification=True,
        )
    except Exception:  # as at registration: whatever the parsers raise, the answer is refused
        return False
    advanced = WebAuthnCredential.objects.filter(pk=saved.pk, sign_count=saved.sign_count).update(
        sign_count=verified.new_sign_count, last_used_at=timezone.now(), backed_up=verified.credential_backed_up
    )
    return advanced == 1


class WebAuthnFactor:
    name: str = "webauthn"
    proof_field: str = "webauthn"
    summary_key: str = "webauthn"
    amr: tuple[str, ...] = ("hwk",)
    standalone: bool = True

    def confirmed(self, user: CustomUser) -> bool:
        return WebAuthnCredential.objects.filter(user=user).exists()

    def verify(self, *, user: CustomUser, proof: Any, context: FactorContext) -> bool:
        if not isinstance(proof, dict):
            return False
        if context.challenge_id is not None:
            return assertion_check(
                credential=proof, user=user, purpose=Purpose.SECOND_FACTOR, mfa_challenge_id=context.challenge_id
            )
        if context.session_id is not None:
            return assertion_check(
                credential=proof,
                user=user,
                purpose=Purpose.REAUTHENTICATE,
                user_id=user.pk,
                session_id=context.session_id,
            )
        return False

    def summary(self, user: CustomUser) -> list[dict[str, Any]]:
        rows = WebAuthnCredential.objects.filter(user=user).order_by("created_at", "pk")
        return [
            {
                "id": row.pk,
                "name": row.name,
                "created_at": row.created_at,
                "last_used_at": row.last_used_at,
                "transports": row.transports,
                "discoverable": row.discoverable,
                "backed_up": row.backed_up,
            }
            for row in rows
        ]

    def remove_all(self, user: CustomUser) -> int:
        return WebAuthnCredential.objects.filter(user=user).delete()[0]


WEBAUTHN = factor_register(WebAuthnFactor())
