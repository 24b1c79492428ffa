"""Query-string filters of the people lists (django-filter): every bad value is a 400 naming the parameter."""

import re

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from users.models import AdminHOD, CustomUser, Gender, Staff, Student, UserType
from users.selectors import people_search

IDS_MAX = 1000
SEARCH_MAX_LENGTH = 100
MAX_DB_INT = 2_147_483_647
_ID = re.compile(r"[0-9]{1,18}")


class StrictBooleanField(forms.Field):
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``); anything else is an error, not "no filter"."""

    TRUE = frozenset({"true", "1", "yes"})
    FALSE = frozenset({"false", "0", "no"})

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValidationError("Must be true or false.", code="invalid")


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanFilter(django_filters.Filter):
    field_class = StrictBooleanField


@extend_schema_field(OpenApiTypes.INT)
class IntegerFilter(django_filters.Filter):
    """An exact match on a whole number (no silent truncation of ``1.5``, no out-of-range database error)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_DB_INT)
        super().__init__(*args, **kwargs)


class IdListField(forms.CharField):
    # What to_python accepts, for the schema (users/api/schema.py): up to IDS_MAX ids, blanks around each, empty
    # elements ignored (``1,,2`` is ``1,2``).
    schema_extra = {"pattern": rf"^[\s,]*$|^[\s,]*[0-9]{{1,18}}(\s*,[\s,]*[0-9]{{1,18}}){{0,{IDS_MAX - 1}}}[\s,]*$"}

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if len(parts) > IDS_MAX:
            raise ValidationError(f"At most {IDS_MAX} ids.", code="too_many")
        bad = [part for part in parts if not _ID.fullmatch(part)]
        if bad:
            raise ValidationError(f"Not a valid id: {bad[0][:40]!r}; give ids as 1,2,3.", code="invalid")
        return sorted({int(part) for part in parts})


@extend_schema_field({"type": "string", "example": "1,2,3"})
class IdListFilter(django_filters.Filter):
    """``ids=1,2,3``: at most ``IDS_MAX`` positive ids."""

    field_class = IdListField

    def filter(self, qs, value):
        if value is None:
            return qs
        return qs.filter(pk__in=value)


class PeopleFilterSet(django_filters.FilterSet):
    """Filters shared by every people list; deactivated people are hidden unless asked for."""

    user_prefix = "user__"

    is_active = StrictBooleanFilter(method="filter_is_active", help_text="true: active only; false: deactivated only.")
    include_inactive = StrictBooleanFilter(
        method="filter_nothing", help_text="true: deactivated people are listed too (default: hidden)."
    )
    date_joined = django_filters.DateFromToRangeFilter(
        method="filter_date_joined", help_text="date_joined_after / date_joined_before: inclusive dates (UTC)."
    )
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=SEARCH_MAX_LENGTH,
        help_text="Words that must each appear in a name, username, e-mail or student/employee id (any case).",
    )

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        if data.get("is_active") is None and not data.get("include_inactive"):
            queryset = queryset.filter(**{f"{self.user_prefix}is_active": True})
        return super().filter_queryset(queryset).order_by(*self._ordering(data))

    def _ordering(self, data) -> list[str]:
        # Empty elements (``ordering=,`` or ``username,``) are ignored, as in ``ids``.
        params = [param for param in data.get("ordering") or [] if param and param.lstrip("-")]
        ordering = [self.filters["ordering"].get_ordering_value(param) for param in params]
        if not any(name.lstrip("-") == "id" for name in ordering):
            ordering.append("id")  # a stable order, so pages neither repeat nor skip rows
        return ordering

    def filter_is_active(self, queryset, name, value):
        return queryset.filter(**{f"{self.user_prefix}is_active": value})

    def filter_nothing(self, queryset, name, value):
        return queryset

    def filter_date_joined(self, queryset, name, value):
        if value.start is not None:
            queryset = queryset.filter(**{f"{self.user_prefix}date_joined__gte": value.start})
        if value.stop is not None:
            queryset = queryset.filter(**{f"{self.user_prefix}date_joined__lte": value.stop})
        return queryset

    def filter_search(self, queryset, name, value):
        return people_search(queryset, text=value) if value.strip() else queryset


def _ordering(*extra: tuple[str, str], prefix: str = "user__") -> django_filters.OrderingFilter:
    fields = [
        ("id", "id"),
        (f"{prefix}username", "username"),
        (f"{prefix}first_name", "first_name"),
        (f"{prefix}last_name", "last_name"),
        (f"{prefix}email", "email"),
        (f"{prefix}date_joined", "date_joined"),
        *extra,
    ]
    return django_filters.OrderingFilter(
        fields=fields, method="filter_nothing", help_text="Comma-separated; prefix - for descending. Default: id."
    )


class StudentFilterSet(PeopleFilterSet):
    gender = django_filters.ChoiceFilter(choices=Gender.choices)
    course_id = IntegerFilter()
    session_year_id = IntegerFilter()
    ordering = _ordering(
        ("student_id", "student_id"), ("course_id", "course_id"), ("session_year_id", "session_year_id")
    )

    class Meta:
        model = Student
        fields = ["gender", "course_id", "session_year_id"]


class StaffFilterSet(PeopleFilterSet):
    department = django_filters.CharFilter(lookup_expr="iexact", max_length=120)
    ordering = _ordering(("employee_id", "employee_id"), ("department", "department"))

    class Meta:
        model = Staff
        fields = ["department"]


class AdminHODFilterSet(PeopleFilterSet):
    department = django_filters.CharFilter(lookup_expr="iexact", max_length=120)
    ordering = _ordering(("department", "department"))

    class Meta:
        model = AdminHOD
        fields = ["department"]


class UserFilterSet(PeopleFilterSet):
    user_prefix = ""

    ids = IdListFilter(help_text=f"Comma-separated user ids, at most {IDS_MAX}.")
    user_type = django_filters.TypedChoiceFilter(choices=UserType.choices, coerce=int)
    gender = django_filters.ChoiceFilter(field_name="student_profile__gender", choices=Gender.choices)
    course_id = IntegerFilter(field_name="student_profile__course_id")
    session_year_id = IntegerFilter(field_name="student_profile__session_year_id")
    department = django_filters.CharFilter(
        method="filter_department", max_length=120, help_text="Department of a staff member or HOD (any case)."
    )
    ordering = _ordering(("user_type", "user_type"), prefix="")

    class Meta:
        model = CustomUser
        fields = ["user_type"]

    def filter_department(self, queryset, name, value):
        in_department = Q(staff_profile__department__iexact=value) | Q(adminhod_profile__department__iexact=value)
        return queryset.filter(in_department)
