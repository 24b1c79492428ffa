"""Reads: users with their profiles, their public data, sessions, the people directory (no cache: see users.cache)."""

import json
from datetime import datetime
from functools import cache as cache_result
from uuid import UUID

from django.db import connection
from django.db.models import CharField, DateTimeField, F, Lookup, Model, Q, QuerySet, Value
from django.db.models.functions import Lower
from oauth2_provider.models import Application

from users.models import (
    PROFILE_MODELS,
    PROFILE_RELATED_NAMES,
    ROLE_NAMES,
    AdminHOD,
    CustomUser,
    OidcAuthorization,
    OidcConsent,
    ProfileBase,
    Staff,
    Student,
    UserSession,
    UserType,
)
from users.people_schema import PUBLIC_USER_FIELDS


def users_with_profiles() -> QuerySet[CustomUser]:
    """Users with every role profile joined in, so reading ``user_profile()`` costs no query."""
    return CustomUser.objects.select_related(*PROFILE_RELATED_NAMES.values())


def user_for_login(identifier: str) -> CustomUser | None:
    """The account a login identifier (username or e-mail, any case) names, with its profile joined.

    Compared as ``LOWER(column) = LOWER(identifier)``, the expressions of the case-insensitive unique indexes
    (the e-mail one is partial: ``email <> ''``, repeated here so the planner may use it).
    """
    typed = Lower(Value(identifier, output_field=CharField()))
    lookup = Q(username_ci=typed)
    if "@" in identifier:
        lookup |= Q(email_ci=typed) & ~Q(email="")
    found = users_with_profiles().alias(username_ci=Lower("username"), email_ci=Lower("email")).filter(lookup)
    # At most two rows (one per unique index). No ORDER BY ... LIMIT: it can steer the planner to walk the
    # primary key instead; the lowest id wins, as before.
    return min(found, key=lambda user: user.pk, default=None)


def user_profile(user: CustomUser) -> ProfileBase | None:
    """The profile matching the user's role, or None if it is missing."""
    return getattr(user, PROFILE_RELATED_NAMES[user.user_type], None)


_USER_COLUMNS = {field.name: field for field in CustomUser._meta.concrete_fields}
# The columns the user JSON is built from (users.people_schema.PUBLIC_USER_FIELDS; ``role`` is computed).
PUBLIC_COLUMNS = tuple(name for name in PUBLIC_USER_FIELDS if name in _USER_COLUMNS)


def _json_value(value: object) -> object:
    """A value as the user JSON writes it: a date and time in ISO 8601 with ``Z`` for UTC, the rest as it is."""
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def _public_row(row: dict) -> dict:
    """The user JSON of one row of ``PUBLIC_COLUMNS``, in the declared key order."""
    return {
        name: ROLE_NAMES[row["user_type"]] if name == "role" else _json_value(row[name]) for name in PUBLIC_USER_FIELDS
    }


def users_bulk_public(*, user_ids: list[int]) -> list[dict]:
    """The public data of the users with these ids, in id order, in one query; unknown ids are absent.

    Reads only the columns the JSON needs, as plain rows: no model instances, one datetime per user.
    """
    rows = CustomUser.objects.filter(pk__in=set(user_ids)).order_by("pk").values(*PUBLIC_COLUMNS)
    return [_public_row(row) for row in rows]


def users_public_json_rows(user_ids: list[int]) -> list[tuple[int, str]]:
    """(id, JSON text) of these users in id order, in one query; on PostgreSQL the database writes the JSON.

    The ids travel as one array parameter, so the statement is the same whatever their number; rows are
    built by ``json_build_object`` in the key order of ``user_public_data``, and a date and time is written
    as Python's ``isoformat`` writes it (microseconds only when there are some, ``Z`` for UTC).
    """
    if not user_ids:
        return []
    if connection.vendor != "postgresql":
        return [(row["id"], json.dumps(row)) for row in users_bulk_public(user_ids=user_ids)]
    with connection.cursor() as cursor:
        cursor.execute(_public_json_sql(), [user_ids])
        return cursor.fetchall()


def _public_json_value_sql(name: str) -> str:
    """The SQL expression of one key of the user JSON, over the user table aliased ``u``."""
    if name == "role":
        cases = " ".join(f"WHEN {int(value)} THEN '{role}'" for value, role in ROLE_NAMES.items())
        return f'CASE u."{_USER_COLUMNS["user_type"].column}" {cases} END'
    field = _USER_COLUMNS[name]
    column = f'u."{field.column}"'
    if isinstance(field, DateTimeField):
        utc = f"{column} AT TIME ZONE 'UTC'"
        return (
            f"to_char({utc}, CASE WHEN mod(date_part('microseconds', {utc})::bigint, 1000000) = 0 "
            """THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END)"""
        )
    return column


@cache_result
def _public_json_sql() -> str:
    """The statement, built once from the declared keys and the model's metadata; only the ids are a parameter."""
    meta = CustomUser._meta
    pairs = [f"'{name}', {_public_json_value_sql(name)}" for name in PUBLIC_USER_FIELDS]
    pk = f'u."{_USER_COLUMNS["id"].column}"'
    source = f'"{meta.db_table}" u WHERE {pk} IN (SELECT unnest(%s::bigint[])) ORDER BY {pk}'
    return f"SELECT {pk}, json_build_object({', '.join(pairs)})::text FROM {source}"  # noqa: S608 - ids are a parameter


def user_public_data(user: CustomUser) -> dict:
    """The user JSON every endpoint shares (DESIGN §6): the keys of ``PUBLIC_USER_FIELDS``, in their order."""
    return {name: _json_value(getattr(user, name)) for name in PUBLIC_USER_FIELDS}


def sessions_active_for(*, user: CustomUser) -> QuerySet[UserSession]:
    return UserSession.objects.active().filter(user=user).order_by("-created_at")


def session_apps(*, session_ids: list[UUID]) -> dict[str, list[dict[str, str]]]:
    """The apps (OpenID Connect clients) that got tokens through each session, by session id: one query."""
    apps: dict[str, list[dict[str, str]]] = {}
    rows = (
        OidcAuthorization.objects.filter(session__in=session_ids, exchanged_at__isnull=False)
        .values_list("session_id", "application__client_id", "application__name")
        .order_by("session_id", "application__name")
        .distinct()
    )
    for session_id, client_id, name in rows:
        apps.setdefault(str(session_id), []).append({"client_id": client_id, "name": name})
    return apps


def consents_for(*, user: CustomUser) -> QuerySet[OidcConsent]:
    """The apps ``user`` allowed, with what they may read."""
    return OidcConsent.objects.filter(user=user).select_related("application").order_by("application__name")


# --- People directory (students, staff, HODs, all users) -------------------------------------

SEARCH_MAX_TERMS = 5
SEARCH_IDS_INLINE_MAX = 1000
DIRECTORY_READERS = frozenset({UserType.HOD, UserType.STAFF})


def people_queryset(*, user_type: int) -> QuerySet[ProfileBase]:
    """The profiles of one role with their user joined in, so a page of them costs one query."""
    return PROFILE_MODELS[user_type].objects.select_related("user")


def person_get(*, user_type: int, profile_id: int) -> ProfileBase | None:
    """One profile of ``user_type`` by its profile id, with its user; None if there is no such profile."""
    return people_queryset(user_type=user_type).filter(pk=profile_id).first()


def _name_q(term: str) -> Q:
    q = Q()
    for name in ("first_name", "last_name", "username", "email"):
        q |= Q(**{f"{name}__icontains": term})
    return q


_SCHOOL_ID_OF_PROFILE: dict[type[ProfileBase], str] = {Student: "student_id", Staff: "employee_id"}
# listed model -> the profiles whose school id is searched besides the names, username and e-mail of users
_SEARCHED_PROFILES: dict[type[Model], tuple[type[ProfileBase], ...]] = {
    CustomUser: (Student, Staff),
    Student: (Student,),
    Staff: (Staff,),
    AdminHOD: (),
}


def people_search_user_ids(model: type[Model], term: str) -> QuerySet:
    """User ids matching ``term``: a UNION of single-table queries, each answered by its own trigram index.

    An OR across joined tables cannot use per-table indexes; a UNION of single-table branches can (a bitmap
    index scan each), so the cost follows the number of matches, not the size of the tables.
    """
    branches = [
        profile.objects.filter(**{f"{_SCHOOL_ID_OF_PROFILE[profile]}__icontains": term}).values_list("user_id")
        for profile in _SEARCHED_PROFILES[model]
    ]
    return CustomUser.objects.filter(_name_q(term)).values_list("pk").union(*branches)


class EqualsAny(Lookup):
    """``lhs = ANY(%s)`` with the values as one array parameter (PostgreSQL).

    PostgreSQL parses and plans it far faster than an ``IN`` list of as many parameters, and still sees the
    values, so it knows how many rows to expect.
    """

    lookup_name = "equals_any"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", [*params, list(self.rhs)]


def _id_in(field: str, ids: list[int]) -> Q | Lookup:
    return EqualsAny(F(field), ids) if connection.vendor == "postgresql" and ids else Q(**{f"{field}__in": ids})


def people_search(queryset: QuerySet, *, text: str) -> QuerySet:
    """Rows whose names, username, e-mail or student/employee id contain every word of ``text`` (any case).

    Per word, the matching user ids are read first (at most ``SEARCH_IDS_INLINE_MAX``), then for a profile list
    the profile ids of those users, and the page and count queries get them as a literal list: the planner
    then knows how few rows match and walks the primary key index over just those rows. (Given a subquery
    instead, its poor LIKE estimate can make it scan or walk the whole table.) That is one or two more queries
    per word, whatever the page size. A word matching more users than that falls back to the subquery.
    """
    model = queryset.model
    for term in text.split()[:SEARCH_MAX_TERMS]:
        matching = people_search_user_ids(model, term)
        user_ids = [row[0] for row in matching[: SEARCH_IDS_INLINE_MAX + 1]]
        if len(user_ids) > SEARCH_IDS_INLINE_MAX:
            queryset = queryset.filter(**{"pk__in" if model is CustomUser else "user_id__in": matching})
        elif model is CustomUser:
            queryset = queryset.filter(_id_in("pk", user_ids))
        else:
            profile_ids = list(model.objects.filter(_id_in("user_id", user_ids)).values_list("pk", flat=True))
            queryset = queryset.filter(_id_in("pk", profile_ids))
    return queryset


def user_visible_to(*, viewer, user_id: int) -> bool:
    """May ``viewer`` look up this user id? Services and Staff/HODs anyone, students only themselves."""
    sees_everyone = getattr(viewer, "is_service", False) or getattr(viewer, "user_type", None) in DIRECTORY_READERS
    return sees_everyone or (viewer is not None and viewer.pk == user_id)


def people_count_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the number of rows of ``queryset`` (one EXPLAIN, no scan); None on other databases."""
    if connection.vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().explain(format="json"))
    if isinstance(plan, list):
        plan = plan[0]
    return int(plan["Plan"]["Plan Rows"])


@cache_result
def _oidc_client_select() -> tuple[str, list[str], list]:
    """The client's SELECT (every column), compiled once by Django; the client_id is its one parameter."""
    compiler = Application.objects.filter(client_id="").query.get_compiler(connection=connection)
    sql, _params = compiler.as_sql()
    columns = [column for column, _, _ in compiler.select]
    return sql, [column.target.attname for column in columns], compiler.get_converters(columns)


def oidc_client_get(client_id: str) -> Application | None:
    """The OpenID Connect client (django-oauth-toolkit's ``Application``) with this client_id, or None.

    Every authorization request reads it; compiling the same SELECT through the ORM each time costs more than the
    query itself, so the statement is compiled once and the row becomes the model through ``from_db``.
    """
    if connection.vendor != "postgresql":
        return Application.objects.filter(client_id=client_id).first()
    sql, attnames, converters = _oidc_client_select()
    with connection.cursor() as cursor:
        cursor.execute(sql, [client_id])
        row = cursor.fetchone()
    if row is None:
        return None
    if converters:
        compiler = Application.objects.none().query.get_compiler(connection=connection)
        [row] = compiler.apply_converters([row], converters)
    return Application.from_db(connection.alias, attnames, row)
