"""Reads: users with their profiles, sessions, and the cached public snapshot of a user."""

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet

from users.models import PROFILE_RELATED_NAMES, CustomUser, ProfileBase, UserSession


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


def _snapshot_key(user_id: int) -> str:
    return f"user:{user_id}"


def user_snapshot(*, user_id: int) -> dict | None:
    """The user's public data from the cache, loaded once from the database on a miss."""
    data = cache.get(_snapshot_key(user_id))
    if data is None:
        user = CustomUser.objects.filter(pk=user_id).first()
        if user is None:
            return None
        data = user_public_data(user)
        cache.set(_snapshot_key(user_id), data, timeout=settings.SESSION_STATE_CACHE_SECONDS)
    return data


def user_snapshot_invalidate(*, user_id: int) -> None:
    key = _snapshot_key(user_id)
    cache.delete(key)
    # Also after commit: a reader between the write and the commit may have cached the old row.
    transaction.on_commit(lambda: cache.delete(key))


def sessions_active_for(*, user: CustomUser) -> QuerySet[UserSession]:
    return UserSession.objects.active().filter(user=user).order_by("-created_at")
