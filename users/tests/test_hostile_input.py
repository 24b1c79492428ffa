"""Hostile input (DESIGN §7) sent to every operation of the OpenAPI schema: never a 5xx, and 400 where the edge refuses.

Each operation of the schema is one test; inside it every class of hostile input is sent as an anonymous caller
and as an HOD (and as a Student for profile/), with path ids filled from real people. Every answer must be below
500. Where the request edge owns the refusal the answer must be exactly 400: a query string that is not valid
UTF-8 or holds a NUL (before authentication), and, for an operation that takes a body of that media type, deep
JSON, lone surrogates, NUL, invalid UTF-8 and too many form fields (unless the caller is refused first, as the
same operation refuses them with a harmless body); so is a null for a required property. A path id holding a
NUL or bytes that are not UTF-8 names nothing: 404. Empty elements of ``ordering`` and ``ids`` are ignored, so
a list that answers 200 without them answers 200 with them.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from drf_spectacular.generators import SchemaGenerator

from users.api.throttles import PrincipalThrottle, PublicEndpointThrottle
from users.models import UserSession, UserType
from users.services.auth import session_start
from users.services.users import PROFILE_SELF_EDITABLE_FIELDS

pytestmark = pytest.mark.django_db

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
METHODS = ("get", "post", "put", "patch", "delete")
OPERATIONS = [(path, method) for path, item in SCHEMA["paths"].items() for method in item if method in METHODS]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
REFUSED_CALLER = (401, 403)
SURROGATE = "%ED%A0%80"  # U+D800 as UTF-8 would encode it, which UTF-8 forbids
TOO_MANY_FIELDS = 1100  # above Django's DATA_UPLOAD_MAX_NUMBER_FIELDS


# --- The schema ----------------------------------------------------------------------------------


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMA["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return {**_resolve(schema["allOf"][0]), **{k: v for k, v in schema.items() if k != "allOf"}}
    return schema


@dataclass
class Operation:
    path: str
    method: str
    spec: dict[str, Any]

    @property
    def media_types(self) -> list[str]:
        return list(self.spec.get("requestBody", {}).get("content", {}))

    def body_schema(self, media_type: str = JSON) -> dict[str, Any]:
        content = self.spec.get("requestBody", {}).get("content", {})
        if not content:
            return {}
        chosen = content[media_type] if media_type in content else next(iter(content.values()))
        return _resolve(chosen.get("schema", {}))

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        return {name: _resolve(prop) for name, prop in self.body_schema().get("properties", {}).items()}

    @property
    def query_parameters(self) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == "query"]

    @property
    def has_path_parameters(self) -> bool:
        return "{" in self.path


# --- Requests ----------------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One hostile request; ``edge`` says whether the request edge must answer it exactly 400."""

    body: bytes = b""
    content_type: str = JSON
    query: str = ""
    path_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    edge: str = "none"  # "always": 400 whoever asks; "body": 400 unless the caller is refused first;
    # "no_route": 404 whoever asks (a path id holding a NUL or bytes that are not UTF-8 names nothing)
    null_required: bool = False  # a required non-nullable property was sent as null: 400 like "body"
    list_elements: bool = False  # only empty elements of ordering/ids: a 200 list stays 200


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _takes(operation: Operation, media_type: str) -> bool:
    return any(kind.split(";")[0] == media_type for kind in operation.media_types)


def _json_edge(operation: Operation) -> str:
    return "body" if _takes(operation, JSON) else "none"


def _every_property(operation: Operation, value: Any) -> dict[str, Any]:
    return dict.fromkeys(operation.properties or ["x"], value)


def deep_json(operation: Operation) -> Iterator[Attempt]:
    first = next(iter(operation.properties), "x")
    nested = "[" * 5000 + "]" * 5000
    yield Attempt(body=f'{{"{first}": {nested}}}'.encode(), edge=_json_edge(operation))
    yield Attempt(body=b"{" + b'"a":{' * 1000 + b"}" * 1001, edge=_json_edge(operation))


def lone_surrogates(operation: Operation) -> Iterator[Attempt]:
    yield Attempt(body=b'{"\\ud800": "x"}', edge=_json_edge(operation))
    yield Attempt(body=_json(_every_property(operation, "a\ud800")), edge=_json_edge(operation))  # json escapes it
    yield Attempt(body=_json(_every_property(operation, ["\udfff"])), edge=_json_edge(operation))


def nul_characters(operation: Operation) -> Iterator[Attempt]:
    yield Attempt(body=_json(_every_property(operation, "a\x00b")), edge=_json_edge(operation))
    yield Attempt(body=b'{"a\\u0000": 1}', edge=_json_edge(operation))


def invalid_utf8(operation: Operation) -> Iterator[Attempt]:
    first = next(iter(operation.properties), "x").encode()
    for bad in (b"\xff\xfe", b"\xed\xa0\x80", b"\xc3"):
        yield Attempt(body=b'{"' + first + b'": "a' + bad + b'"}', edge=_json_edge(operation))


def _null_refused(schema: dict[str, Any]) -> bool:
    """Whether the object schema has a required property that may not be null."""
    properties = {name: _resolve(prop) for name, prop in schema.get("properties", {}).items()}
    return any(not properties[name].get("nullable") for name in schema.get("required", []) if name in properties)


def nulls(operation: Operation) -> Iterator[Attempt]:
    schema, props = operation.body_schema(), operation.properties
    refused = _null_refused(schema)
    yield Attempt(body=_json(_every_property(operation, None)), null_required=refused)
    objects = {name: prop for name, prop in props.items() if "properties" in prop}
    if objects:
        body = {name: dict.fromkeys(objects[name]["properties"]) if name in objects else None for name in props}
        nested = any(name in schema.get("required", []) and _null_refused(prop) for name, prop in objects.items())
        yield Attempt(body=_json(body), null_required=refused or nested)


def form_bodies(operation: Operation) -> Iterator[Attempt]:
    if not _takes(operation, FORM):
        return
    names = list(operation.properties) or ["x"]
    for value in (SURROGATE, "a%00", "%FF"):
        yield Attempt(body="&".join(f"{name}={value}" for name in names).encode(), content_type=FORM, edge="body")
    yield Attempt(body="&".join(f"f{i}=1" for i in range(TOO_MANY_FIELDS)).encode(), content_type=FORM, edge="body")


def multipart_bodies(operation: Operation) -> Iterator[Attempt]:
    if not _takes(operation, "multipart/form-data"):
        return
    for bad in (b"\xff\xfe", b"\xed\xa0\x80", b"a\x00b"):
        csv = b"username,email\n" + bad + b",someone@school.test\n"
        body = encode_multipart(BOUNDARY, {"file": SimpleUploadedFile("roster.csv", csv, "text/csv")})
        yield Attempt(body=body, content_type=MULTIPART_CONTENT, edge="body")
    fields = {f"f{i}": "1" for i in range(TOO_MANY_FIELDS)}
    yield Attempt(body=encode_multipart(BOUNDARY, fields), content_type=MULTIPART_CONTENT, edge="body")


def query_strings(operation: Operation) -> Iterator[Attempt]:
    names = operation.query_parameters or ["q"]
    for value in (SURROGATE, "%00", "a%ED%A0", "%C0%AF"):
        yield Attempt(query="&".join(f"{name}={value}" for name in names), edge="always")
    yield Attempt(query="&".join(f"{name}=," for name in names))
    yield Attempt(query="&".join(f"{name}=" for name in names))
    yield Attempt(query="&".join(f"{name}=1,,2" for name in names))
    list_params = {"ordering": ",username,,-date_joined,", "ids": ",,"}
    chosen = [f"{name}={list_params[name]}" for name in names if name in list_params]
    if chosen:
        yield Attempt(query="&".join(chosen), list_elements=True)
        yield Attempt(query="ordering=,", list_elements=True)


def path_ids(operation: Operation) -> Iterator[Attempt]:
    if operation.has_path_parameters:
        for value in ("%00", "1%00", SURROGATE, "%FF"):
            yield Attempt(path_id=value, edge="no_route")


def headers(operation: Operation) -> Iterator[Attempt]:
    # A header arrives as Latin-1 text; these are the bytes of a lone surrogate.
    yield Attempt(headers={"HTTP_AUTHORIZATION": "Bearer \xed\xa0\x80"})
    yield Attempt(headers={"HTTP_AUTHORIZATION": "Basic \xed\xa0\x80"})


CASES: list[Callable[[Operation], Iterator[Attempt]]] = [
    deep_json,
    lone_surrogates,
    nul_characters,
    invalid_utf8,
    nulls,
    form_bodies,
    multipart_bodies,
    query_strings,
    path_ids,
    headers,
]


# --- Callers and ids ---------------------------------------------------------------------------------


@dataclass
class World:
    people: dict[str, Any]
    spare_session_id: str
    logins: dict[str, Any] = field(default_factory=dict)

    def path_for(self, operation: Operation, override: str | None) -> str:
        parts = []
        for index, part in enumerate(operation.path.split("/")):
            if part.startswith("{"):
                part = override if override is not None else self.id_for(operation.path.split("/")[index - 1], part)
            parts.append(part)
        return "/".join(parts)

    def id_for(self, collection: str, name: str) -> str:
        if name == "{session_id}":
            return self.spare_session_id
        profiles = {"students": "student", "staff": "staff", "admins": "hod"}
        if collection in profiles:
            user = self.people[profiles[collection]]
            return str(user.student_profile.pk if collection == "students" else self._profile(user).pk)
        return str(self.people["student"].pk)  # user/{id}/ and any other user-id path

    @staticmethod
    def _profile(user) -> Any:
        return user.staff_profile if user.user_type == UserType.STAFF else user.adminhod_profile


@pytest.fixture
def world(make_user) -> World:
    people = {
        "hod": make_user(user_type=UserType.HOD, username="edge-hod"),
        "staff": make_user(user_type=UserType.STAFF, username="edge-staff"),
        "student": make_user(user_type=UserType.STUDENT, username="edge-student"),
    }
    spare = session_start(user=people["hod"], ip="127.0.0.1", user_agent="spare")
    return World(people=people, spare_session_id=str(spare.session.id))


@pytest.fixture(autouse=True)
def _no_throttles(monkeypatch, settings) -> None:
    """Dozens of requests per operation from one address: rate limits are tested elsewhere.

    The per-address e-mail throttles stay on (with room to spare): they read the body before the view does.
    """
    monkeypatch.setattr(PublicEndpointThrottle, "allow_request", lambda self, request, view: True)
    monkeypatch.setattr(PrincipalThrottle, "allow_request", lambda self, request, view: True)
    settings.THROTTLE_PASSWORD_RESET_RATE = settings.THROTTLE_VERIFICATION_EMAIL_RATE = "100000/hour"


def _callers(operation: Operation) -> list[str | None]:
    callers: list[str | None] = [None, "hod"]
    if operation.path.endswith("/profile/"):
        callers.append("student")
    return callers


def _bearer(world: World, caller: str | None) -> dict[str, Any]:
    if caller is None:
        return {}
    # A new session whenever the last one ended: a logout, a revoke or a password change among the
    # attempts must not turn the rest of them into 401s.
    login = world.logins.get(caller)
    if login is None or not UserSession.objects.filter(pk=login.session.pk, ended_at__isnull=True).exists():
        login = world.logins[caller] = session_start(user=world.people[caller], ip="127.0.0.1", user_agent="edge")
    return {"HTTP_AUTHORIZATION": f"Bearer {login.tokens.access_token}"}


def _send(client: Client, world: World, operation: Operation, caller: str | None, attempt: Attempt) -> Any:
    path = world.path_for(operation, attempt.path_id)
    if attempt.query:
        path = f"{path}?{attempt.query}"
    extra: dict[str, Any] = {**_bearer(world, caller), **attempt.headers}
    return client.generic(operation.method.upper(), path, attempt.body, content_type=attempt.content_type, **extra)


def _harmless_body_status(client: Client, world: World, operation: Operation, caller: str | None) -> int:
    """What the operation answers this caller for a body it must refuse (a JSON list): 401/403 if the caller is."""
    content_type = operation.media_types[0]
    if content_type.startswith("multipart/"):
        harmless = Attempt(body=encode_multipart(BOUNDARY, {"x": "1"}), content_type=MULTIPART_CONTENT)
    else:
        harmless = Attempt(body=b"[]", content_type=content_type)
    return _send(client, world, operation, caller, harmless).status_code


def _plain_status(client: Client, world: World, operation: Operation, caller: str | None) -> int:
    return _send(client, world, operation, caller, Attempt()).status_code


def _problems(operation: Operation, world: World) -> Iterator[str]:
    client = Client(raise_request_exception=False)
    for caller in _callers(operation):
        who = caller or "anonymous"
        refused_body = _harmless_body_status(client, world, operation, caller) if operation.media_types else None
        plain = _plain_status(client, world, operation, caller) if operation.method == "get" else None
        expected_refusal = refused_body if refused_body in REFUSED_CALLER else 400
        for case in CASES:
            for attempt in case(operation):
                response = _send(client, world, operation, caller, attempt)
                status = response.status_code
                label = f"{who} {case.__name__} {attempt.query or attempt.path_id or attempt.body[:60]!r}"
                if status >= 500:
                    yield f"{label}: {status} {response.content[:200]!r}"
                elif attempt.edge == "always" and status != 400:
                    yield f"{label}: {status}, expected 400 from the request edge"
                elif attempt.edge == "no_route" and status != 404:
                    yield f"{label}: {status}, expected 404"
                elif attempt.edge == "body" and status != expected_refusal:
                    yield f"{label}: {status}, expected {expected_refusal}"
                elif attempt.null_required and _takes(operation, JSON) and status != expected_refusal:
                    yield f"{label}: {status}, expected {expected_refusal} for a null in a required property"
                elif attempt.list_elements and plain == 200 and status != 200:
                    yield f"{label}: {status}, empty list elements should be ignored"


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_operation_refuses_hostile_input_without_a_server_error(world, path, method) -> None:
    # Given an operation of the schema and real people for its path ids
    operation = Operation(path, method, SCHEMA["paths"][path][method])

    # When every class of hostile input is sent by each kind of caller
    problems = list(_problems(operation, world))

    # Then nothing is a 5xx, and what the edge owns is a 400
    assert not problems, "\n".join(problems)


def test_schema_has_operations_to_check() -> None:
    assert len(OPERATIONS) >= 40
    assert ("/api/v1/users/profile/", "patch") in OPERATIONS


@pytest.mark.parametrize("name", sorted(PROFILE_SELF_EDITABLE_FIELDS[UserType.STUDENT]))
def test_student_profile_field_null_or_lone_surrogate_is_a_400_naming_the_field(world, name) -> None:
    # Given a Student and one of the profile fields they may edit themselves
    client = Client()
    auth = _bearer(world, "student")
    before = world.people["student"].student_profile

    # When they send null, or text with a lone surrogate, for it
    null = client.patch(
        "/api/v1/users/profile/", _json({"profile": {name: None}}), content_type=JSON, **auth
    )  # fmt: skip
    surrogate = client.patch(
        "/api/v1/users/profile/", b'{"profile": {"' + name.encode() + b'": "a\\ud800"}}', content_type=JSON, **auth
    )

    # Then both are 400: the null as an error on that profile field, and nothing changed
    assert null.status_code == 400
    assert null.json() == {f"profile.{name}": ["This field cannot be null."]}
    assert surrogate.status_code == 400
    assert surrogate.json()["code"] == "parse_error"
    before.refresh_from_db()
    assert getattr(before, name) == ""
