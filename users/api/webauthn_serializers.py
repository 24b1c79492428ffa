"""The shapes of WebAuthn in the API: a credential as the browser's ``PublicKeyCredential.toJSON()`` gives it (binary
as base64url), checked for types and sizes here so that only well-formed values reach py_webauthn."""

from typing import Any

from rest_framework import serializers

from users.api.serializers import StrictInputSerializer
from users.services.mfa.webauthn import b64url_decode


class Base64UrlField(serializers.CharField):
    """Text that must be base64url (padding optional); kept as text."""

    default_error_messages = {"base64url": "Must be base64url-encoded binary."}

    def __init__(self, *, max_length: int, **kwargs: Any) -> None:
        super().__init__(max_length=max_length, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        text = super().to_internal_value(data)
        if text:
            try:
                b64url_decode(text)
            except ValueError:
                self.fail("base64url")
        return text


def _credential_id(**kwargs: Any) -> Base64UrlField:
    return Base64UrlField(max_length=1400, help_text="The credential id, base64url (at most 1023 bytes).", **kwargs)


class AttestationResponseSerializer(serializers.Serializer):
    clientDataJSON = Base64UrlField(max_length=8192)
    attestationObject = Base64UrlField(max_length=65536)
    transports = serializers.ListField(
        child=serializers.CharField(max_length=32), max_length=16, required=False, help_text="From getTransports()."
    )


class RegistrationCredentialSerializer(serializers.Serializer):
    """The answer of ``navigator.credentials.create()`` as JSON; other keys browsers add are ignored."""

    id = _credential_id()
    rawId = _credential_id()
    type = serializers.ChoiceField(choices=["public-key"])
    response = AttestationResponseSerializer()
    authenticatorAttachment = serializers.CharField(max_length=32, required=False, allow_null=True)
    clientExtensionResults = serializers.DictField(required=False)


class AssertionResponseSerializer(serializers.Serializer):
    clientDataJSON = Base64UrlField(max_length=8192)
    authenticatorData = Base64UrlField(max_length=8192)
    signature = Base64UrlField(max_length=2048)
    userHandle = Base64UrlField(max_length=256, required=False, allow_null=True, allow_blank=True)


class AssertionSerializer(serializers.Serializer):
    """The answer of ``navigator.credentials.get()`` as JSON; other keys browsers add are ignored."""

    id = _credential_id()
    rawId = _credential_id()
    type = serializers.ChoiceField(choices=["public-key"])
    response = AssertionResponseSerializer()
    authenticatorAttachment = serializers.CharField(max_length=32, required=False, allow_null=True)


def credential_json(data: Any) -> dict[str, Any]:
    """Validated data as plain dicts, the form py_webauthn parses."""
    if isinstance(data, dict):
        return {key: credential_json(value) for key, value in data.items()}
    if isinstance(data, list):
        return [credential_json(value) for value in data]  # type: ignore[return-value]
    return data


class PasskeyRegisterInputSerializer(StrictInputSerializer):
    name = serializers.CharField(
        max_length=64, required=False, allow_blank=True, help_text="What the person calls it (default: Passkey)."
    )
    credential = RegistrationCredentialSerializer()


class PasskeyLoginInputSerializer(StrictInputSerializer):
    credential = AssertionSerializer()


class MfaTokenInputSerializer(StrictInputSerializer):
    mfa_token = serializers.CharField(max_length=256, help_text="From the 401 mfa_required answer of login/.")


class PasskeySerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="For DELETE mfa/webauthn/{id}/.")
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    transports = serializers.ListField(child=serializers.CharField())
    discoverable = serializers.BooleanField(help_text="The authenticator said it keeps it (usable without a password).")
    backed_up = serializers.BooleanField(help_text="A synced passkey (the authenticator said it is backed up).")


class PasskeyRegisteredSerializer(PasskeySerializer):
    recovery_codes = serializers.ListField(
        child=serializers.CharField(),
        help_text="With a person's first factor: shown this once. Empty otherwise.",
    )
