"""URLs under /api/v1/users/."""

from django.urls import path

from users.api import (
    account_urls,
    audit,
    health,
    mfa_urls,
    people_directory,
    people_urls,
    service_urls,
    views,
    wellknown,
)

app_name = "users"

_routes = [
    path("register/", views.RegisterView.as_view(), name="register"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("token/refresh/", views.TokenRefreshView.as_view(), name="token-refresh"),
    path("profile/", views.ProfileView.as_view(), name="profile"),
    path("change-password/", views.ChangePasswordView.as_view(), name="change-password"),
    path("sessions/", views.SessionListView.as_view(), name="sessions"),
    path("sessions/<uuid:session_id>/", views.SessionDetailView.as_view(), name="session-detail"),
    path("validate-token/", views.ValidateTokenView.as_view(), name="validate-token"),
    path(".well-known/jwks.json", wellknown.JWKSView.as_view(), name="jwks"),
    path("health/", health.HealthView.as_view(), name="health"),
    path("health/live/", health.LivenessView.as_view(), name="health-live"),
    path("audit-events/", audit.AuditEventListView.as_view(), name="audit-events"),
    *people_urls.urlpatterns,
    *account_urls.urlpatterns,
    *service_urls.urlpatterns,
    *mfa_urls.urlpatterns,
    # The prefix itself: the users collection and a user by id, for the original system's frontend.
    path("", people_directory.UserCollectionView.as_view(), name="users"),
    path("<int:pk>/", people_directory.UserItemView.as_view(), name="user-item"),
]

# Django tries the routes in order until one matches. The ones sibling services call all day go first (none of
# them overlaps another route, so the order changes no answer; users/tests/test_hot_paths.py checks it).
HOT_ROUTES = ("validate-token", "user-detail", "bulk-info", "token-refresh")
urlpatterns = sorted(
    _routes, key=lambda route: HOT_ROUTES.index(route.name) if route.name in HOT_ROUTES else len(HOT_ROUTES)
)
