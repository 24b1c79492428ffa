"""Students, staff, HODs and the user directory: parse input, call a service or selector, shape output."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from users import cache
from users.api import filters
from users.api import people_serializers as ps
from users.api.pagination import PageNumberPagination
from users.api.permissions import (
    HasServiceScope,
    IsHOD,
    IsPerson,
    IsStaffOrHOD,
    email_change_step_up,
    recent_authentication_require,
)
from users.api.schema import ErrorSerializer, errors
from users.api.serializers import UserWithProfileSerializer
from users.authentication import LEGACY_READ_AUTHENTICATION
from users.models import CustomUser, ProfileBase, UserType
from users.people_schema import USER_FIELDS
from users.selectors import (
    people_count_estimate,
    people_queryset,
    person_get,
    user_visible_to,
    users_with_profiles,
)
from users.services import people as people_services
from users.services.step_up import person_create_needs_step_up

USER_INPUT_KEYS = frozenset({*USER_FIELDS, "password", "is_active"})  # the nested user object's keys
DIRECTORY_READERS = [IsStaffOrHOD | HasServiceScope("users:read")]
TOO_LARGE = OpenApiResponse(ErrorSerializer, description="The file is over ROSTER_MAX_BYTES or ROSTER_MAX_ROWS.")


class PeoplePage(Page):
    has_more = False

    def has_next(self) -> bool:
        return self.has_more


class PeoplePaginator(Paginator):
    """Counts exactly up to ``PEOPLE_COUNT_EXACT_LIMIT`` rows and estimates above, so a page costs the same at any size.

    The page query fetches one row more than the page to know whether a next page exists, so ``next`` is always
    exact. With an estimated count, pages are not capped by it: a page past the real end is 404 (empty).
    """

    object_list: QuerySet[Any]  # the people queryset (Paginator accepts any sliceable sequence)

    def __init__(self, object_list: QuerySet[Any], per_page: int, **kwargs: Any) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.exact_limit = settings.PEOPLE_COUNT_EXACT_LIMIT
        self.count_exact = True

    @cached_property
    def count(self) -> int:
        counted = self.object_list[: self.exact_limit + 1].count()  # COUNT(*) over at most limit + 1 rows
        if counted <= self.exact_limit:
            return counted
        estimate = people_count_estimate(self.object_list)
        if estimate is None:  # not PostgreSQL (the embedded SQLite mode): small enough to count
            return self.object_list.count()
        self.count_exact = False
        return max(counted, estimate)

    def validate_number(self, number):
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise PageNotAnInteger("That page number is not an integer.") from exc
        if number < 1:
            raise EmptyPage("That page number is less than 1.")
        if self.count and self.count_exact and number > self.num_pages:
            raise EmptyPage("That page contains no results.")
        return number

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage("That page contains no results.")
        page = PeoplePage(rows[: self.per_page], number, self)
        page.has_more = len(rows) > self.per_page
        return page


class PeoplePagination(PageNumberPagination):
    """``page`` and ``page_size`` (default 20, at most 100; a size that is not a positive whole number is ignored).

    ``count`` is exact up to ``PEOPLE_COUNT_EXACT_LIMIT`` (``count_exact: true``) and PostgreSQL's estimate above.
    """

    django_paginator_class = PeoplePaginator
    last_page_strings = ()

    def get_paginated_response(self, data):
        paginator = self.page.paginator
        return Response(
            {
                "count": paginator.count,
                "count_exact": paginator.count_exact,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"] = {
            "count": {"type": "integer", "example": 123},
            "count_exact": {
                "type": "boolean",
                "description": "false when count is PostgreSQL's estimate (more than PEOPLE_COUNT_EXACT_LIMIT rows).",
            },
            **{name: value for name, value in response["properties"].items() if name != "count"},
        }
        response["required"] = ["count", "count_exact", "results"]
        return response


@contextmanager
def field_errors_nested(user_key: str | None = "user") -> Iterator[None]:
    """Service errors name fields flatly; the API nests the user's own fields under ``user_key`` as the input does
    (``None``: a flat body, errors stay flat)."""
    try:
        yield
    except DjangoValidationError as exc:
        if not hasattr(exc, "error_dict"):
            raise
        body: dict = {}
        for name, messages in exc.message_dict.items():
            if name in USER_INPUT_KEYS and user_key is not None:
                body.setdefault(user_key, {})[name] = messages
            else:
                body[name] = messages
        raise exceptions.ValidationError(body) from exc


def person_create_from(form: ps.ProfileFieldsSerializer, *, user_type: int, request: Request) -> ProfileBase:
    """Validate a create body in any of its forms and create the person; service errors keyed as the body sent them.

    Every API create of a person goes through here, so a new HOD (who controls every identity) always needs the
    caller's recent authentication first.
    """
    form.is_valid(raise_exception=True)
    if person_create_needs_step_up(user_type=user_type):
        recent_authentication_require(request)
    actor: CustomUser = request.user  # type: ignore[assignment]  # IsHOD admitted only a signed-in person
    fields = dict(form.validated_data)
    user = dict(fields.pop("user"))
    password = user.pop("password", None)
    with field_errors_nested(form.user_key):
        return people_services.person_create(
            user_type=user_type, user=user, profile=fields, password=password, actor=actor
        )


class _Role:
    """One role's declarations (students, staff or HODs), shared by its views and their schemas."""

    user_type: ClassVar[int]
    noun: ClassVar[str]
    output_serializer: ClassVar[type[Serializer]]
    create_serializer: ClassVar[ps.RoleCreateInput]
    update_serializer: ClassVar[type[Serializer]]
    read_permission_classes: ClassVar[list] = DIRECTORY_READERS


class _RoleView(_Role):
    """What the views of one role share: queryset, serializers, permissions."""

    write_permission_classes: ClassVar[list] = [IsHOD]

    def get_permissions(self):
        read = self.request.method in SAFE_METHODS
        return [cls() for cls in (self.read_permission_classes if read else self.write_permission_classes)]

    def get_queryset(self):
        return people_queryset(user_type=self.user_type)

    def get_serializer_class(self):
        return self.output_serializer


class PeopleListView(_RoleView, generics.ListCreateAPIView):
    filter_backends = [DjangoFilterBackend]
    pagination_class = PeoplePagination

    def create(self, request, *args, **kwargs):
        form = self.create_serializer(data=request.data)
        person = person_create_from(form, user_type=self.user_type, request=request)
        return Response(self.output_serializer(person).data, status=status.HTTP_201_CREATED)


class PersonDetailView(_RoleView, generics.GenericAPIView):
    def get_object(self):
        person = person_get(user_type=self.user_type, profile_id=self.kwargs["pk"])
        if person is None:
            raise exceptions.NotFound(f"No {self.noun} with this id.")
        self.check_object_permissions(self.request, person)
        return person

    def get(self, request, pk: int):
        return Response(self.output_serializer(self.get_object()).data)

    def put(self, request, pk: int):
        return self._update(request, replace=True)

    def patch(self, request, pk: int):
        return self._update(request, replace=False)

    def delete(self, request, pk: int):
        person = self.get_object()
        people_services.user_deactivate(user=person.user, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request, *, replace: bool):
        person = self.get_object()
        data = self.update_serializer(data=request.data, partial=not replace)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        user = dict(fields.pop("user", {}))
        email_change_step_up(request, user=person.user, email=user.get("email"))
        with field_errors_nested():
            person = people_services.person_update(
                person=person, user=user, profile=fields, replace=replace, actor=request.user
            )
        return Response(self.output_serializer(person).data)


class _Student(_Role):
    user_type = UserType.STUDENT
    noun = "student"
    output_serializer = ps.StudentSerializer
    create_serializer = ps.STUDENT_CREATE
    update_serializer = ps.StudentUpdateInputSerializer


class _Staff(_Role):
    user_type = UserType.STAFF
    noun = "staff member"
    output_serializer = ps.StaffSerializer
    create_serializer = ps.STAFF_CREATE
    update_serializer = ps.StaffUpdateInputSerializer


class _AdminHOD(_Role):
    user_type = UserType.HOD
    noun = "head of department"
    output_serializer = ps.AdminHODSerializer
    create_serializer = ps.ADMIN_HOD_CREATE
    update_serializer = ps.AdminHODUpdateInputSerializer
    read_permission_classes: ClassVar[list] = [IsHOD]


def _list_schema(role: type[_Role], plural: str, readers: str):
    return extend_schema_view(
        get=extend_schema(
            tags=["people"],
            summary=f"List {plural} ({readers})",
            description="Deactivated people are hidden unless is_active=false or include_inactive=true. "
            "A page out of range is 404.",
            responses={200: role.output_serializer(many=True), **errors(400, 401, 403, 404)},
        ),
        post=extend_schema(
            tags=["people"],
            summary=f"Create a {role.noun} with its user account (HOD)",
            description="Without user.password the account gets an unusable password and an invitation e-mail. "
            "The user may also be nested as admin, or given flat beside the profile fields (username then defaults "
            "to the e-mail address); both forms accept confirm_password, which must equal password."
            + (
                " Creating an HOD needs a recent authentication (login or reauthenticate/ within REAUTH_SECONDS): "
                "403 `reauthentication_required` otherwise."
                if role.user_type == UserType.HOD
                else ""
            ),
            request=role.create_serializer.schema(),
            responses={201: role.output_serializer, **errors(400, 401, 403, 415, 503)},
        ),
    )


def _detail_schema(role: type[_Role], readers: str, *, replace_and_delete: bool = True):
    views = {
        "get": extend_schema(
            tags=["people"],
            summary=f"A {role.noun} by profile id ({readers})",
            responses={200: role.output_serializer, **errors(401, 403, 404)},
        ),
        "put": extend_schema(
            tags=["people"],
            summary=f"Replace a {role.noun}'s editable fields (HOD)",
            description="Editable fields not given are reset to empty. user.is_active changes only when given. A new "
            "e-mail address needs a recent authentication (403 `reauthentication_required` otherwise).",
            request=role.update_serializer,
            responses={200: role.output_serializer, **errors(400, 401, 403, 404, 415, 503)},
        ),
        "patch": extend_schema(
            tags=["people"],
            summary=f"Change some of a {role.noun}'s fields (HOD)",
            description='{"user": {"is_active": true}} reactivates; false deactivates like DELETE. A new e-mail '
            "address needs a recent authentication (403 `reauthentication_required` otherwise).",
            request=role.update_serializer,
            responses={200: role.output_serializer, **errors(400, 401, 403, 404, 415, 503)},
        ),
    }
    if not replace_and_delete:
        del views["put"]
    else:
        views["delete"] = extend_schema(
            tags=["people"],
            summary=f"Deactivate a {role.noun} (HOD; soft delete, every session ends)",
            responses={
                204: OpenApiResponse(description="Deactivated (or already inactive)."),
                **errors(400, 401, 403, 404, 503),
            },
        )
    return extend_schema_view(**views)


@_list_schema(_Student, "students", "Staff, HOD, services with users:read")
class StudentListView(_Student, PeopleListView):
    filterset_class = filters.StudentFilterSet


@_detail_schema(_Student, "Staff, HOD, services with users:read")
class StudentDetailView(_Student, PersonDetailView):
    pass


@_list_schema(_Staff, "staff", "Staff, HOD, services with users:read")
class StaffListView(_Staff, PeopleListView):
    filterset_class = filters.StaffFilterSet


@_detail_schema(_Staff, "Staff, HOD, services with users:read")
class StaffDetailView(_Staff, PersonDetailView):
    pass


@_list_schema(_AdminHOD, "heads of department", "HOD")
class AdminHODListView(_AdminHOD, PeopleListView):
    filterset_class = filters.AdminHODFilterSet


@_detail_schema(_AdminHOD, "HOD", replace_and_delete=False)
class AdminHODDetailView(_AdminHOD, PersonDetailView):
    http_method_names = ["get", "patch", "head", "options"]


@extend_schema_view(
    get=extend_schema(
        tags=["people"],
        summary="List users of every role with their profile (Staff, HOD, services with users:read)",
        description="Deactivated users are hidden unless is_active=false or include_inactive=true.",
        responses={200: UserWithProfileSerializer(many=True), **errors(400, 401, 403, 404)},
    )
)
class UserListView(generics.ListAPIView):
    authentication_classes = LEGACY_READ_AUTHENTICATION
    permission_classes = DIRECTORY_READERS
    serializer_class = UserWithProfileSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = filters.UserFilterSet
    pagination_class = PeoplePagination

    def get_queryset(self):
        return users_with_profiles()


class UserDetailView(APIView):
    """Sibling services look people up here all day, so the answer is cached per user (``user_detail_data``)."""

    permission_classes = [IsPerson | HasServiceScope("users:read")]

    @extend_schema(
        tags=["people"],
        summary="A user with its profile, by user id (self; Staff, HOD, services with users:read)",
        description="A student asking for anyone else gets 404, as for an id that does not exist.",
        responses={200: UserWithProfileSerializer, **errors(401, 403, 404)},
    )
    def get(self, request, pk: int):
        data = user_detail_data(user_id=pk) if user_visible_to(viewer=request.user, user_id=pk) else None
        if data is None:
            raise exceptions.NotFound("No user with this id.")
        return Response(data)


def user_detail_data(*, user_id: int) -> dict | None:
    """``user/{id}/``'s JSON from the cache, serialized once from the database on a miss; None if no such user.

    Writes to the user or its profile drop the entry (``users.cache.user_invalidate``, called by the owner of the
    change, and by the model signals after a save outside the owners), so a reader sees a change at once; the
    timeout bounds staleness if that delete is ever lost.
    """
    return cache.user_detail_get(user_id, load=_user_detail_load)


def _user_detail_load(user_id: int) -> dict | None:
    user = users_with_profiles().filter(pk=user_id).first()
    return None if user is None else dict(UserWithProfileSerializer(user).data)


class RosterImportView(APIView):
    """Shared by ``students/import/`` and ``staff/import/``."""

    user_type: ClassVar[int]
    parser_classes = [MultiPartParser]
    permission_classes = [IsHOD]

    def post(self, request):
        max_bytes = settings.ROSTER_MAX_BYTES
        too_large = f"The file is larger than {max_bytes // 1024} KiB; split it."
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > max_bytes + 64 * 1024:  # refused before the body is read; the margin is multipart framing
            raise people_services.RosterRejected(too_large)
        try:
            dry_run = self._dry_run(request)
            upload = ps.RosterUploadSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
        except (exceptions.ValidationError, exceptions.ParseError) as exc:
            # Every 400 of an import has the result's shape, so a client reads one kind of answer.
            return self._refused(exc, dry_run=request.query_params.get("dry_run") in filters.StrictBooleanField.TRUE)
        file = upload.validated_data["file"]
        if file.size > max_bytes:
            raise people_services.RosterRejected(too_large)
        result = people_services.roster_import(
            user_type=self.user_type,
            content=file.read(),
            dry_run=dry_run,
            actor=request.user,
            max_rows=settings.ROSTER_MAX_ROWS,
        )
        if result.errors:
            code = status.HTTP_400_BAD_REQUEST
        else:
            code = status.HTTP_200_OK if dry_run else status.HTTP_201_CREATED
        return Response(result.as_dict(), status=code)

    @staticmethod
    def _dry_run(request) -> bool:
        try:
            return bool(filters.StrictBooleanField(required=False).clean(request.query_params.get("dry_run")))
        except DjangoValidationError as exc:
            raise exceptions.ValidationError({"dry_run": exc.messages}) from exc

    @staticmethod
    def _refused(exc: exceptions.APIException, *, dry_run: bool) -> Response:
        result = people_services.RosterResult(dry_run=dry_run)
        detail = exc.detail if isinstance(exc.detail, dict) else {None: [exc.detail]}
        for name, messages in detail.items():
            for message in messages if isinstance(messages, list) else [messages]:
                result.errors.append(people_services.RosterError(None, name, str(message)))
        return Response(result.as_dict(), status=status.HTTP_400_BAD_REQUEST)


def _import_schema(noun: str, columns: tuple[str, ...]):
    return extend_schema(
        tags=["people"],
        summary=f"Import a CSV roster of {noun} (HOD; all-or-nothing)",
        description=(
            f"Multipart upload, field `file`. Columns (first line): {', '.join(columns)}; username and email are "
            "required. Dates as YYYY-MM-DD. Every account gets an invitation e-mail. Any error in any row: 400 with "
            "every error by line, and nothing is written."
        ),
        parameters=[
            OpenApiParameter("dry_run", OpenApiTypes.BOOL, description="Validate only; write nothing.", required=False)
        ],
        request={"multipart/form-data": ps.RosterUploadSerializer},
        responses={
            200: OpenApiResponse(ps.RosterResultSerializer, description="Dry run: the file is good."),
            201: OpenApiResponse(ps.RosterResultSerializer, description="Imported."),
            400: OpenApiResponse(
                # The view answers every refusal with the result's shape; a request refused at the edge before
                # the view (a query string that is not text, user_service.middleware) has the usual error body.
                PolymorphicProxySerializer(
                    component_name="RosterRefusal",
                    serializers=[ps.RosterResultSerializer, ErrorSerializer],
                    resource_type_field_name=None,
                ),
                description=(
                    "Errors by line (line null: the upload itself, e.g. no file), or {detail, code} for a request "
                    "refused before it is read; nothing written."
                ),
            ),
            413: TOO_LARGE,
            **errors(401, 403, 415, 503),
        },
    )


class StudentImportView(RosterImportView):
    user_type = UserType.STUDENT

    @_import_schema("students", people_services.ROSTER_COLUMNS[UserType.STUDENT])
    def post(self, request):
        return super().post(request)


class StaffImportView(RosterImportView):
    user_type = UserType.STAFF

    @_import_schema("staff", people_services.ROSTER_COLUMNS[UserType.STAFF])
    def post(self, request):
        return super().post(request)
