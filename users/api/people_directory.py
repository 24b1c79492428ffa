"""The users collection at the API prefix: GET/POST ``/api/v1/users/``, GET/PUT/PATCH ``/api/v1/users/{id}/``.

What the original system's server-rendered frontend calls. The list is ``users/`` itself (same view, filters, paging
and queries) with ordinary authentication only; ``{id}/`` answers GET as ``user/{id}/``. Writes take flat bodies and
call the owners the role endpoints and ``profile/`` call: ``person_create`` for a create, ``person_update`` for an
HOD's change, ``profile_update`` for a person's change of their own account.
"""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response
from rest_framework.views import APIView

from users.api.directory_serializers import (
    USER_CHANGE_SCHEMA,
    USER_CREATE_SCHEMA,
    user_change_fields,
    user_create_form,
)
from users.api.people import UserDetailView, UserListView, field_errors_nested, person_create_from
from users.api.permissions import IsHOD, IsPerson, email_change_step_up
from users.api.schema import errors
from users.api.serializers import UserWithProfileSerializer
from users.models import UserType
from users.selectors import user_profile, user_visible_to, users_with_profiles
from users.services import people as people_services
from users.services import users as user_services

CHANGE_DESCRIPTION = (
    "The body is flat: the user's fields (username, email, first_name, last_name, is_active) beside the fields of "
    "the person's role profile. PUT and PATCH both change only the fields given, and null leaves a field "
    "unchanged, so nothing the body leaves out is lost. The person themself may change their self-editable fields "
    "(as PATCH profile/; a new e-mail address must be verified again), any other field given is a 400 naming it; "
    "an HOD may change every field the role endpoints let an HOD change. Staff changing someone else: 403; a "
    "Student naming someone else: 404, as for an id that does not exist. A new e-mail address (one's own or, by an "
    "HOD, another's) needs a recent authentication: 403 `reauthentication_required` otherwise."
)

# PUT and PATCH are one operation (only the fields given change), so they share one description.
change_schema = extend_schema(
    tags=["people"],
    summary="Change a user's fields, by user id (self: self-editable fields; HOD: any editable field)",
    description=CHANGE_DESCRIPTION,
    request=USER_CHANGE_SCHEMA,
    responses={200: UserWithProfileSerializer, **errors(400, 401, 403, 404, 415, 503)},
)


@extend_schema_view(
    get=extend_schema(
        tags=["people"],
        summary="The users collection: users of every role with their profile (Staff, HOD, services with users:read)",
        description="The same list as users/ (filters, ordering, paging). "
        "Deactivated users are hidden unless is_active=false or include_inactive=true.",
        responses={200: UserWithProfileSerializer(many=True), **errors(400, 401, 403, 404)},
    ),
    post=extend_schema(
        tags=["people"],
        summary="Create a person of user_type with its profile (HOD)",
        description="A flat body: user_type (1, 2 or 3, as a number or a string), the user's fields and the role "
        "profile's fields side by side. username defaults to the e-mail address; confirm_password, when given, "
        "must equal password; without a password the account gets an invitation e-mail.",
        request=USER_CREATE_SCHEMA,
        responses={201: UserWithProfileSerializer, **errors(400, 401, 403, 415, 503)},
    ),
)
class UserCollectionView(UserListView):
    """``users/`` at the prefix, plus a create. Its anonymous migration mode (``LEGACY_INTERNAL_NETWORKS``) serves
    ``users/`` and ``bulk_info/`` only, so this path takes credentials like every other."""

    authentication_classes = list(APIView.authentication_classes)  # the default: bearer tokens only

    def get_permissions(self):
        if self.request.method in SAFE_METHODS:
            return super().get_permissions()
        return [IsHOD()]

    def post(self, request):
        user_type, form = user_create_form(request.data)
        person = person_create_from(form, user_type=user_type, request=request)
        user = users_with_profiles().get(pk=person.user_id)
        return Response(UserWithProfileSerializer(user).data, status=status.HTTP_201_CREATED)


class UserItemView(UserDetailView):
    """``user/{id}/`` at the prefix (the user id), plus changes by the person themself or an HOD."""

    def get_permissions(self):
        if self.request.method in SAFE_METHODS:
            return super().get_permissions()
        return [IsPerson()]

    @extend_schema(
        tags=["people"],
        summary="A user with its profile, by user id (as user/{id}/)",
        description="A student asking for anyone else gets 404, as for an id that does not exist.",
        responses={200: UserWithProfileSerializer, **errors(401, 403, 404)},
    )
    def get(self, request, pk: int):
        return super().get(request, pk)

    @change_schema
    def put(self, request, pk: int):
        return self._change(request, pk)

    @change_schema
    def patch(self, request, pk: int):
        return self._change(request, pk)

    def _change(self, request, pk: int) -> Response:
        viewer = request.user
        if not user_visible_to(viewer=viewer, user_id=pk):
            raise exceptions.NotFound("No user with this id.")
        by_hod = viewer.user_type == UserType.HOD
        if viewer.pk != pk and not by_hod:
            raise exceptions.PermissionDenied("Only a head of department may change another person.")
        target = users_with_profiles().filter(pk=pk).first()
        person = None if target is None else user_profile(target)
        if target is None or person is None:
            raise exceptions.NotFound("No user with this id.")
        user_fields, profile_fields = user_change_fields(user_type=target.user_type, data=request.data)
        email_change_step_up(request, user=target, email=user_fields.get("email"))
        with field_errors_nested(None):
            if by_hod:
                people_services.person_update(person=person, user=user_fields, profile=profile_fields, actor=viewer)
            else:
                user_services.profile_update(
                    user=viewer, user_data=user_fields, profile_data=profile_fields, profile_prefix=""
                )
        return Response(UserWithProfileSerializer(users_with_profiles().get(pk=pk)).data)
