"""URLs of service tokens, introspection, bulk lookups and revocations under /api/v1/users/."""

from django.urls import path

from users.api import service

urlpatterns = [
    path("service-token/", service.ServiceTokenView.as_view(), name="service-token"),
    path("token/introspect/", service.IntrospectView.as_view(), name="token-introspect"),
    path("bulk_info/", service.BulkInfoView.as_view(), name="bulk-info"),
    path("revocations/", service.RevocationsView.as_view(), name="revocations"),
]
