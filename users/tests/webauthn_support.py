"""A software authenticator for the passkey tests, driven through fido2's real WebAuthn client.

``SoftAuthenticator`` speaks CTAP2 (getInfo, makeCredential, getAssertion) as a security key would: it keeps its
credentials (ES256 keys) and a signature counter per credential, stores discoverable credentials, and verifies the
user (as a PIN or a fingerprint would) unless told to skip it. ``Browser`` is fido2's ``Fido2Client`` at an origin:
it builds ``clientDataJSON``, checks the relying-party id against the origin as a browser does, and answers the JSON
of ``credential.toJSON()``, which is what the API takes.
"""

import copy
import hashlib
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.cose import ES256
from fido2.ctap import CtapDevice, CtapError
from fido2.ctap2.base import Ctap2
from fido2.hid import CAPABILITY, CTAPHID
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticatorData,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions,
)
from rest_framework import status

from users.tests.mfa_support import API
from users.tests.principals import bearer_client

AAGUID = bytes.fromhex("5e1f7a0c0d3b4a8e9f2c6b1d7e4a3c20")
FLAG = AuthenticatorData.FLAG


@dataclass
class Credential:
    credential_id: bytes
    rp_id: str
    user_handle: bytes
    user_name: str
    key: ec.EllipticCurvePrivateKey
    discoverable: bool
    sign_count: int = 0


@dataclass
class SoftAuthenticator(CtapDevice):
    """A CTAP2 authenticator in memory. ``verify_user=False`` makes it leave the UV flag unset while claiming to
    verify (an authenticator that did not verify the user); ``count=False`` keeps every counter at 0."""

    verify_user: bool = True
    count: bool = True
    credentials: dict[bytes, Credential] = field(default_factory=dict)

    @property
    def capabilities(self) -> int:
        return CAPABILITY.CBOR

    @classmethod
    def list_devices(cls):  # pragma: no cover - not a discoverable device
        return iter(())

    def clone(self) -> "SoftAuthenticator":
        """A copy with the same keys and counters, as a cloned security key would be."""
        return copy.deepcopy(self)

    def call(self, cmd: int, data: bytes = b"", event=None, on_keepalive=None) -> bytes:
        if cmd != CTAPHID.CBOR:
            raise CtapError(CtapError.ERR.INVALID_COMMAND)
        command = data[0]
        args: dict = dict(cast(Mapping, cbor.decode(data[1:]))) if len(data) > 1 else {}
        try:
            if command == Ctap2.CMD.GET_INFO:
                answer = self._info()
            elif command == Ctap2.CMD.MAKE_CREDENTIAL:
                answer = self._make_credential(args)
            elif command == Ctap2.CMD.GET_ASSERTION:
                answer = self._get_assertion(args)
            else:
                raise CtapError(CtapError.ERR.INVALID_COMMAND)
        except CtapError as exc:
            return bytes([exc.code])
        return b"\x00" + cbor.encode(answer)

    def _info(self) -> dict[int, Any]:
        options = {"rk": True, "up": True, "uv": True, "plat": False}
        return {1: ["FIDO_2_0"], 2: ["credProps"], 3: AAGUID, 4: options, 5: 4096, 6: [1], 9: ["usb"]}

    def _flags(self, options: dict, *, attested: bool = False) -> FLAG:
        flags = FLAG.UP if options.get("up", True) else FLAG(0)
        if options.get("uv") and self.verify_user:
            flags |= FLAG.UV
        if attested:
            flags |= FLAG.AT
        return flags

    def _auth_data(self, rp_id: str, flags: FLAG, counter: int, attested: bytes = b"") -> AuthenticatorData:
        return AuthenticatorData(
            hashlib.sha256(rp_id.encode()).digest() + struct.pack(">BI", flags, counter) + attested
        )

    def _make_credential(self, args: dict) -> dict[int, Any]:
        client_data_hash, rp, user, params = args[1], args[2], args[3], args[4]
        options = args.get(7) or {}
        if not any(param.get("alg") == ES256.ALGORITHM for param in params):
            raise CtapError(CtapError.ERR.UNSUPPORTED_ALGORITHM)
        for excluded in args.get(5) or []:
            if excluded["id"] in self.credentials:
                raise CtapError(CtapError.ERR.CREDENTIAL_EXCLUDED)
        key = ec.generate_private_key(ec.SECP256R1())
        credential = Credential(
            credential_id=os.urandom(32),
            rp_id=rp["id"],
            user_handle=user["id"],
            user_name=user.get("name", ""),
            key=key,
            discoverable=bool(options.get("rk")),
        )
        self.credentials[credential.credential_id] = credential
        public_key = ES256.from_cryptography_key(key.public_key())
        attested = AttestedCredentialData.create(AAGUID, credential.credential_id, public_key)
        flags = self._flags({**options, "up": True}, attested=True)
        auth_data = self._auth_data(credential.rp_id, flags, self._next_count(credential), attested)
        signature = key.sign(auth_data + client_data_hash, ec.ECDSA(hashes.SHA256()))
        return {1: "packed", 2: auth_data, 3: {"alg": ES256.ALGORITHM, "sig": signature}}

    def _next_count(self, credential: Credential) -> int:
        if self.count:
            credential.sign_count += 1
        return credential.sign_count

    def _get_assertion(self, args: dict) -> dict[int, Any]:
        rp_id, client_data_hash = args[1], args[2]
        options = args.get(5) or {}
        allowed = [item["id"] for item in args.get(3) or []]
        if allowed:
            found = [self.credentials[i] for i in allowed if i in self.credentials]
        else:
            found = [c for c in self.credentials.values() if c.discoverable]
        found = [c for c in found if c.rp_id == rp_id]
        if not found:
            raise CtapError(CtapError.ERR.NO_CREDENTIALS)
        credential = found[-1]
        up = options.get("up", True)
        counter = self._next_count(credential) if up else credential.sign_count
        auth_data = self._auth_data(rp_id, self._flags(options), counter)
        signature = credential.key.sign(auth_data + client_data_hash, ec.ECDSA(hashes.SHA256()))
        answer: dict[int, Any] = {1: {"type": "public-key", "id": credential.credential_id}, 2: auth_data, 3: signature}
        if not allowed:
            answer[4] = {"id": credential.user_handle, "name": credential.user_name}
            answer[5] = 1
        return answer


class _Collector(DefaultClientDataCollector):
    """A browser at ``origin``; ``check_rp_id=False`` lets a page on another site ask (a phishing page's origin)."""

    def __init__(self, origin: str, *, check_rp_id: bool) -> None:
        super().__init__(origin, verify=(lambda rp_id, origin: True) if not check_rp_id else _same_site)


def _same_site(rp_id: str, origin: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(origin).hostname or ""
    return host == rp_id or host.endswith("." + rp_id)


class _Yes(UserInteraction):
    def request_uv(self, permissions, rd_id) -> bool:
        return True


@dataclass
class Browser:
    """fido2's WebAuthn client in a page at ``origin``, with ``authenticator`` plugged in."""

    authenticator: SoftAuthenticator
    origin: str = "http://localhost:3000"
    check_rp_id: bool = True

    def _client(self) -> Fido2Client:
        collector = _Collector(self.origin, check_rp_id=self.check_rp_id)
        return Fido2Client(self.authenticator, collector, user_interaction=_Yes())

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        """``navigator.credentials.create({publicKey: options})`` then ``credential.toJSON()``."""
        return dict(self._client().make_credential(PublicKeyCredentialCreationOptions.from_dict(options)))

    def get(self, options: dict[str, Any]) -> dict[str, Any]:
        """``navigator.credentials.get({publicKey: options})`` then ``credential.toJSON()``."""
        return dict(self._client().get_assertion(PublicKeyCredentialRequestOptions.from_dict(options)).get_response(0))


def passkey_registered(user: Any, *, origin: str = "http://localhost:3000") -> Browser:
    """A passkey registered for ``user`` through the API (a discoverable one), and the browser holding it."""
    browser = Browser(SoftAuthenticator(), origin=origin)
    client = bearer_client(user)
    options = client.post(f"{API}/mfa/webauthn/register/options/").json()
    response = client.post(f"{API}/mfa/webauthn/register/", {"credential": browser.create(options)}, format="json")
    assert response.status_code == status.HTTP_201_CREATED, response.content
    return browser


# For the browser tests (Playwright): register a passkey of the page's authenticator as a web client of the API
# would: log in, ask for the options, create the credential, send it. Answers the registration's HTTP status.
REGISTER_PASSKEY = """async ([username, password]) => {
  const post = (path, body, token) => fetch("/api/v1/users/" + path, {
    method: "POST",
    headers: {"Content-Type": "application/json", ...(token ? {Authorization: "Bearer " + token} : {})},
    body: JSON.stringify(body || {}),
  });
  const login = await (await post("login/", {username, password})).json();
  const options = await (await post("mfa/webauthn/register/options/", null, login.access_token)).json();
  const credential = await navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
  });
  const registered = await post("mfa/webauthn/register/", {name: "Browser", credential: credential.toJSON()},
                                login.access_token);
  return registered.status;
}"""


def virtual_authenticator_add(devtools: Any) -> None:
    """Give the browser of a Playwright CDP session a platform authenticator that holds passkeys and verifies the
    person (DevTools' WebAuthn domain, enabled here)."""
    devtools.send("WebAuthn.enable")
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
