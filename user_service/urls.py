"""Root URLconf: the users API, its schema and docs, discovery, the sign-in pages and OpenID Connect, the admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from users.api.schema import SchemaView
from users.api.wellknown import OpenIDConfigurationView
from users.metrics import metrics_view

urlpatterns = [
    path("api/v1/users/", include("users.api.urls")),
    path("", include("users.web.urls")),
    path(".well-known/openid-configuration", OpenIDConfigurationView.as_view(), name="openid-configuration"),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
]

handler400 = "user_service.exceptions.json_bad_request"
handler403 = "user_service.exceptions.json_permission_denied"
handler404 = "user_service.exceptions.json_page_not_found"
handler500 = "user_service.exceptions.json_server_error"
