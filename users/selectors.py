"""Reads: users with their profiles, sessions, and the cached public snapshot of a user."""

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet

from users.models import (
    PROFILE_MODELS,
    PROFILE_RELATED_NAMES,
    CustomUser,
    ProfileBase,
    Staff,
    Student,
    UserSession,
    UserType,
)


def users_with_profiles() -> QuerySet[CustomUser]:
    """Users with every role profile joined in, so reading ``user_profile()`` costs no query."""
    return CustomUser.objects.select_related(*PROFILE_RELATED_NAMES.values())


def user_profile(user: CustomUser) -> ProfileBase | None:
    """The profile matching the user's role, or None if it is missing."""
    return getattr(user, PROFILE_RELATED_NAMES[user.user_type], None)


def users_bulk_get(*, user_ids: list[int]) -> list[CustomUser]:
    """The users with these ids, in id order, in one query; unknown ids are simply absent."""
    return list(CustomUser.objects.filter(pk__in=set(user_ids)).order_by("pk"))


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
    key = snapshot_key(user_id)
    cache.delete(key)
    # Also after commit: a reader between the write and the commit may have cached the old row.
    transaction.on_commit(lambda: cache.delete(key))


def sessions_active_for(*, user: CustomUser) -> QuerySet[UserSession]:
    return UserSession.objects.active().filter(user=user).order_by("-created_at")


# --- People directory (students, staff, HODs, all users) -------------------------------------

SEARCH_MAX_TERMS = 5
DIRECTORY_READERS = frozenset({UserType.HOD, UserType.STAFF})


def people_queryset(*, user_type: int) -> QuerySet[ProfileBase]:
    """The profiles of one role with their user joined in, so a page of them costs one query."""
    return PROFILE_MODELS[user_type].objects.select_related("user")


def person_get(*, user_type: int, profile_id: int) -> ProfileBase | None:
    """One profile of ``user_type`` by its profile id, with its user; None if there is no such profile."""
    return people_queryset(user_type=user_type).filter(pk=profile_id).first()


def _name_q(term: str, prefix: str = "") -> Q:
    q = Q()
    for name in ("first_name", "last_name", "username", "email"):
        q |= Q(**{f"{prefix}{name}__icontains": term})
    return q


def _matching_ids(model: type, term: str) -> QuerySet:
    """Ids of ``model`` rows matching ``term``: a UNION of one subquery per table, each served by its own index.

    An OR across joined tables cannot use the per-table trigram indexes; a UNION of single-table
    subqueries can (one bitmap index scan per branch), so the cost follows the number of matches.
    """
    if model is CustomUser:
        return (
            CustomUser.objects.filter(_name_q(term))
            .values("pk")
            .union(
                Student.objects.filter(student_id__icontains=term).values("user_id"),
                Staff.objects.filter(employee_id__icontains=term).values("user_id"),
            )
        )
    by_user = model.objects.filter(user__in=CustomUser.objects.filter(_name_q(term)).values("pk")).values("pk")
    code_field = {Student: "student_id", Staff: "employee_id"}.get(model)
    if code_field is None:
        return by_user
    return by_user.union(model.objects.filter(**{f"{code_field}__icontains": term}).values("pk"))


def people_search(queryset: QuerySet, *, text: str) -> QuerySet:
    """Rows whose names, username, e-mail or student/employee id contain every word of ``text`` (any case)."""
    for term in text.split()[:SEARCH_MAX_TERMS]:
        queryset = queryset.filter(pk__in=_matching_ids(queryset.model, term))
    return queryset


def user_visible_get(*, viewer, user_id: int) -> CustomUser | None:
    """``user/{id}/``: the user with its profiles if ``viewer`` may see it (students: only themselves), else None."""
    sees_everyone = getattr(viewer, "is_service", False) or getattr(viewer, "user_type", None) in DIRECTORY_READERS
    if not sees_everyone and (viewer is None or viewer.pk != user_id):
        return None
    return users_with_profiles().filter(pk=user_id).first()
