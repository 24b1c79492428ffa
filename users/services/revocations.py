"""The revocation feed: sessions ended and users deactivated recently, for local token verifiers."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from users.models import CustomUser, UserSession

# Rows committed slightly out of timestamp order are caught by re-reading this much before the cursor.
COMMIT_LAG = timedelta(seconds=5)
MAX_ITEMS = 10_000


@dataclass(frozen=True)
class Revocations:
    session_ids: list[str]
    user_ids: list[int]
    cursor: datetime
    truncated: bool


def revocation_window() -> timedelta:
    """How far back a revocation can still matter: no access token outlives this."""
    return settings.JWT_ACCESS_LIFETIME + timedelta(seconds=settings.JWT_LEEWAY_SECONDS) + COMMIT_LAG


def revocations_since(*, since: datetime | None) -> Revocations:
    """Ended sessions and deactivated users since ``since`` (clamped to the window); repeats are possible."""
    now = timezone.now()
    floor = now - revocation_window()
    # Compared before subtracting: a cursor near datetime.min minus the lag would overflow.
    start = since - COMMIT_LAG if since is not None and since > floor + COMMIT_LAG else floor
    sessions = list(
        UserSession.objects.filter(ended_at__gt=start)
        .order_by("ended_at")
        .values_list("id", "ended_at")[: MAX_ITEMS + 1]
    )
    truncated = len(sessions) > MAX_ITEMS
    sessions = sessions[:MAX_ITEMS]
    cursor = (sessions[-1][1] or now) if truncated else now  # ended_at is set on every row listed
    user_ids = list(
        CustomUser.objects.filter(is_active=False, deactivated_at__gt=start, deactivated_at__lte=cursor)
        .order_by("deactivated_at")
        .values_list("id", flat=True)[:MAX_ITEMS]
    )
    return Revocations(
        session_ids=[str(sid) for sid, _ in sessions], user_ids=user_ids, cursor=cursor, truncated=truncated
    )
