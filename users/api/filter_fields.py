"""Filter fields that refuse what the database cannot compare, so bad query strings are 400s, not 500s."""

from datetime import UTC

import django_filters
from django import forms


class UTCDateTimeField(forms.DateTimeField):
    """An ISO 8601 datetime, normalised to UTC (PostgreSQL refuses offsets beyond about ±16 h), years 1900–9999."""

    schema_extra = {"pattern": r"^(19[0-9]{2}|[2-9][0-9]{3})-"}  # the years, for the schema (users/api/schema.py)

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except OverflowError as exc:
            raise forms.ValidationError("Enter a date and time between 1900 and 9999.", code="invalid") from exc
        if not 1900 <= parsed.year <= 9999:
            raise forms.ValidationError("Enter a date and time between 1900 and 9999.", code="invalid")
        return parsed


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField
