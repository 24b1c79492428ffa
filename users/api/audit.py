"""The audit trail for HODs: GET audit-events/ with filters by user, type and date."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers

from users.api.filter_fields import UTCDateTimeFilter
from users.api.permissions import IsHOD
from users.api.schema import errors
from users.models import SecurityEvent


class SecurityEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = SecurityEvent
        fields = ["id", "type", "user", "actor", "ip", "user_agent", "data", "created_at"]


class SecurityEventFilter(django_filters.FilterSet):
    user = django_filters.NumberFilter(field_name="user_id", min_value=1, max_value=2**63 - 1)
    type = django_filters.MultipleChoiceFilter(choices=SecurityEvent.Type.choices)
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = SecurityEvent
        fields = ["user", "type", "created_after", "created_before"]


@extend_schema(
    tags=["audit"],
    summary="Security events (HODs only), newest first",
    responses={200: SecurityEventSerializer(many=True), **errors(400, 401, 403, 404)},
)
class AuditEventListView(generics.ListAPIView):
    permission_classes = [IsHOD]
    serializer_class = SecurityEventSerializer
    filterset_class = SecurityEventFilter
    queryset = SecurityEvent.objects.order_by("-created_at", "-id")
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]
