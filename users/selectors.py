"""Reads: users with their profiles, sessions, and the cached public snapshot of a user."""

import json
import logging
from functools import cache as cache_result

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Lookup, Model, Q, QuerySet
from redis.exceptions import RedisError

from users.models import (
    PROFILE_MODELS,
    PROFILE_RELATED_NAMES,
    ROLE_NAMES,
    AdminHOD,
    CustomUser,
    ProfileBase,
    Staff,
    Student,
    UserSession,
    UserType,
)
from users.rawcache import redis_cache_client

logger = logging.getLogger(__name__)


def users_with_profiles() -> QuerySet[CustomUser]:
    """Users with every role profile joined in, so reading ``user_profile()`` costs no query."""
    return CustomUser.objects.select_related(*PROFILE_RELATED_NAMES.values())


def user_for_login(identifier: str) -> CustomUser | None:
    """The account a login identifier (username or e-mail, any case) names, with its profile joined."""
    lookup = Q(username__iexact=identifier)
    if "@" in identifier:
        lookup |= Q(email__iexact=identifier)
    return users_with_profiles().filter(lookup).order_by("id").first()


def user_profile(user: CustomUser) -> ProfileBase | None:
    """The profile matching the user's role, or None if it is missing."""
    return getattr(user, PROFILE_RELATED_NAMES[user.user_type], None)


PUBLIC_FIELDS = (
    "id",
    "username",
    "email",
    "first_name",
    "last_name",
    "user_type",
    "is_active",
    "email_verified",
    "date_joined",
)


def users_bulk_public(*, user_ids: list[int]) -> list[dict]:
    """The public data of the users with these ids, in id order, in one query; unknown ids are absent.

    Reads only the columns the JSON needs, as plain rows: no model instances, one datetime per user.
    """
    rows = CustomUser.objects.filter(pk__in=set(user_ids)).order_by("pk").values(*PUBLIC_FIELDS)
    return [
        {
            **row,
            "role": ROLE_NAMES[row["user_type"]],
            "date_joined": row["date_joined"].isoformat().replace("+00:00", "Z"),
        }
        for row in rows
    ]


def public_json_key(user_id: int) -> str:
    """The user's public JSON as text, kept raw in Redis for bulk lookups (``users_bulk_public_json``)."""
    return f"user-json:{user_id}"


def users_bulk_public_json(*, user_ids: list[int]) -> bytes:
    """``users_bulk_public`` as JSON text, assembled from each user's cached JSON; misses cost one query.

    With Redis, the users' JSON strings come back in one ``MGET`` and are joined as they are: no
    decoding or encoding per user. Users not cached are read in one query, in which PostgreSQL writes
    each row's JSON, and cached for ``SESSION_STATE_CACHE_SECONDS``; writes to a user drop its entry
    (``user_snapshot_invalidate``). Unknown ids are absent and never cached.
    """
    ids = sorted(set(user_ids))
    client = redis_cache_client()
    if client is None:
        return _json_array(text for _, text in _public_json_rows(ids))
    keys = [client.make_key(public_json_key(user_id)) for user_id in ids]
    try:
        cached = client.get_client(write=False).mget(keys) if keys else []
    except RedisError:  # like every cache read here: a Redis outage is a miss, the database answers
        logger.warning("bulk lookup cache unavailable", exc_info=True)
        cached = [None] * len(ids)
    found = {user_id: text for user_id, text in zip(ids, cached, strict=True) if text is not None}
    missing = [user_id for user_id in ids if user_id not in found]
    if missing:
        rows = _public_json_rows(missing)
        found.update((user_id, text.encode()) for user_id, text in rows)
        try:
            pipe = client.get_client(write=True).pipeline(transaction=False)
            for user_id, text in rows:
                pipe.set(client.make_key(public_json_key(user_id)), text, ex=settings.SESSION_STATE_CACHE_SECONDS)
            pipe.execute()
        except RedisError:
            logger.warning("bulk lookup cache unavailable", exc_info=True)
    return b"[" + b",".join(found[user_id] for user_id in ids if user_id in found) + b"]"


def _json_array(texts) -> bytes:
    return ("[" + ",".join(texts) + "]").encode()


def _public_json_rows(user_ids: list[int]) -> list[tuple[int, str]]:
    """(id, JSON text) of these users in id order, in one query; on PostgreSQL the database writes the JSON.

    The ids travel as one array parameter, so the statement is the same whatever their number; rows are
    built by ``json_build_object`` in the key order of ``user_public_data``, and ``date_joined`` is written
    as Python's ``isoformat`` writes it (microseconds only when there are some, ``Z`` for UTC).
    """
    if not user_ids:
        return []
    if connection.vendor != "postgresql":
        return [(row["id"], json.dumps(row)) for row in users_bulk_public(user_ids=user_ids)]
    with connection.cursor() as cursor:
        cursor.execute(_public_json_sql(), [user_ids])
        return cursor.fetchall()


@cache_result
def _public_json_sql() -> str:
    """The statement, built once from the model's metadata; only the ids are a parameter."""
    meta = CustomUser._meta
    column = {field.name: field.column for field in meta.concrete_fields if field.name in PUBLIC_FIELDS}
    role = " ".join(f"WHEN {int(value)} THEN '{name}'" for value, name in ROLE_NAMES.items())
    joined = f"u.\"{column['date_joined']}\" AT TIME ZONE 'UTC'"
    iso = (
        f"to_char({joined}, CASE WHEN mod(date_part('microseconds', {joined})::bigint, 1000000) = 0 "
        """THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END)"""
    )
    pairs = [
        *(f"'{name}', u.\"{column[name]}\"" for name in PUBLIC_FIELDS[:6]),
        f"'role', CASE u.\"{column['user_type']}\" {role} END",
        *(f"'{name}', u.\"{column[name]}\"" for name in ("is_active", "email_verified")),
        f"'date_joined', {iso}",
    ]
    pk = f'u."{column["id"]}"'
    source = f'"{meta.db_table}" u WHERE {pk} IN (SELECT unnest(%s::bigint[])) ORDER BY {pk}'
    return f"SELECT {pk}, json_build_object({', '.join(pairs)})::text FROM {source}"  # noqa: S608 - ids are a parameter


def user_public_data(user: CustomUser) -> dict:
    """The user JSON every endpoint shares (DESIGN §6)."""
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "user_type": user.user_type,
        "role": user.role,
        "is_active": user.is_active,
        "email_verified": user.email_verified,
        "date_joined": user.date_joined.isoformat().replace("+00:00", "Z"),
    }


def snapshot_key(user_id: int) -> str:
    return f"user:{user_id}"


def detail_key(user_id: int) -> str:
    """The cached ``user/{id}/`` answer (the user with its role profile); see users.api.people."""
    return f"user-detail:{user_id}"


def user_snapshot(*, user_id: int) -> dict | None:
    """The user's public data from the cache, loaded once from the database on a miss."""
    data = cache.get(snapshot_key(user_id))
    if data is None:
        user = CustomUser.objects.filter(pk=user_id).first()
        if user is None:
            return None
        data = user_public_data(user)
        cache.set(snapshot_key(user_id), data, timeout=settings.SESSION_STATE_CACHE_SECONDS)
    return data


def user_snapshot_invalidate(*, user_id: int) -> None:
    """Forget the cached views of this user (public data and ``user/{id}/``) after a write to it or its profile."""
    keys = [snapshot_key(user_id), detail_key(user_id), public_json_key(user_id)]
    cache.delete_many(keys)
    # Also after commit: a reader between the write and the commit may have cached the old row.
    transaction.on_commit(lambda: cache.delete_many(keys))


def sessions_active_for(*, user: CustomUser) -> QuerySet[UserSession]:
    return UserSession.objects.active().filter(user=user).order_by("-created_at")


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
