"""The declaration of each role's fields and of the user JSON (users.people_schema), and everything derived from it.

Every list an entry point uses is compared with the declaration, and each role is written through every entry point
with a value for every declared field, so a field added to a role's declaration (and its model) is enough: drift
between the declaration and a derived list fails here.
"""

import json
from datetime import date
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import models
from rest_framework import status

from users.api import people as people_api
from users.api import people_serializers as ps
from users.api.serializers import (
    PROFILE_SERIALIZERS,
    ProfileUpdateInputSerializer,
    UserSerializer,
    UserWithProfileSerializer,
)
from users.models import PROFILE_MODELS, CustomUser, ProfileBase, UserType
from users.people_schema import (
    PUBLIC_USER_FIELDS,
    ROLES,
    USER_FIELDS,
    USER_FIELDS_DECLARED,
    USER_SELF_EDITABLE_FIELDS,
    RoleSchema,
    Rule,
    max_length,
)
from users.selectors import user_public_data, users_bulk_public, users_public_json_rows
from users.services import people as people_services
from users.services.monolith_import import importer as monolith_importer
from users.services.monolith_import import source as monolith_source
from users.services.monolith_import import target as monolith_target
from users.services.people import roster, validation
from users.services.users import PROFILE_SELF_EDITABLE_FIELDS, profile_update
from users.tests.principals import bearer_client

API = "/api/v1/users"
BASE_FIELDS = {"id", *(f.name for f in ProfileBase._meta.fields)}  # what every profile has: id, user, times
INPUT_SERIALIZERS = {
    UserType.STUDENT: (ps.StudentCreateInputSerializer, ps.StudentUpdateInputSerializer),
    UserType.STAFF: (ps.StaffCreateInputSerializer, ps.StaffUpdateInputSerializer),
    UserType.HOD: (ps.AdminHODCreateInputSerializer, ps.AdminHODUpdateInputSerializer),
}
ENDPOINTS = {UserType.STUDENT: "students", UserType.STAFF: "staff", UserType.HOD: "admins"}
ROLE_TYPES = list(ROLES)


def sample(role: RoleSchema, name: str, number: int = 1) -> Any:
    """A valid value for a declared field, chosen from its rule and its model field's type."""
    field = role.model_field(name)
    rule = role.declared(name).rule
    if rule is Rule.PHONE:
        return f"+44 20 7946 {number:04d}"
    if rule is Rule.SCHOOL_ID:
        return f"ID-{number}"
    if field.choices:
        return field.choices[-1][0]
    if isinstance(field, models.DateField):
        return date(2001, 2, 3)
    if isinstance(field, models.IntegerField):
        return 7
    limit = max_length(role.model, name)
    return f"{name} {number}"[:limit]


def as_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def as_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


class TestTheDeclaration:
    @pytest.mark.parametrize("user_type", ROLE_TYPES)
    def test_declares_every_field_of_the_role_model_once(self, user_type):
        # given a role's declaration and its model
        role = ROLES[user_type]
        names = [f.name for f in role.fields]

        # then it names each of the model's own fields exactly once, nothing else
        own = {f.name for f in role.model._meta.concrete_fields} - BASE_FIELDS
        assert len(names) == len(set(names))
        assert set(names) == own
        assert role.model is PROFILE_MODELS[user_type]

    def test_user_fields_are_columns_of_the_user_model(self):
        concrete = {f.name for f in CustomUser._meta.concrete_fields}

        assert set(USER_FIELDS) <= concrete
        assert tuple(f.name for f in USER_FIELDS_DECLARED) == USER_FIELDS

    def test_public_user_fields_are_columns_or_the_role(self):
        concrete = {f.name for f in CustomUser._meta.concrete_fields}

        assert len(set(PUBLIC_USER_FIELDS)) == len(PUBLIC_USER_FIELDS)
        assert set(PUBLIC_USER_FIELDS) - concrete == {"role"}


class TestDerivedLists:
    @pytest.mark.parametrize("user_type", ROLE_TYPES)
    def test_output_serializer_lists_every_declared_field_in_model_order(self, user_type):
        role = ROLES[user_type]

        fields = list(PROFILE_SERIALIZERS[user_type]().fields)

        model_order = [f.name for f in role.model._meta.concrete_fields if f.name in role.names()]
        assert fields == ["id", *model_order, "created_at", "updated_at"]

    @pytest.mark.parametrize("user_type", ROLE_TYPES)
    def test_input_serializers_take_the_api_fields_and_the_user(self, user_type):
        role = ROLES[user_type]

        for serializer in INPUT_SERIALIZERS[user_type]:
            # then each accepts exactly the declared API fields, plus the nested user
            assert set(serializer().fields) == {*role.names(api=True), "user"}, serializer

    def test_nested_user_inputs_take_the_user_fields(self):
        assert set(ps.UserCreateInputSerializer().fields) == {*USER_FIELDS, "password"}
        assert set(ps.UserUpdateInputSerializer().fields) == {*USER_FIELDS, "is_active"}
        assert {*USER_FIELDS, "password", "is_active"} == people_api.USER_INPUT_KEYS

    @pytest.mark.parametrize("user_type", ROLE_TYPES)
    def test_input_lengths_and_nullability_are_the_models(self, user_type):
        role = ROLES[user_type]

        fields = ps.profile_input_fields(user_type)

        for name, field in fields.items():
            model_field = role.model_field(name)
            assert field.allow_null == model_field.null, name
            if getattr(field, "max_length", None) is not None:
                assert field.max_length == max_length(role.model, name), name

    def test_validation_lists_are_the_declared_ones(self):
        for user_type, role in ROLES.items():
            assert validation.PROFILE_FIELDS[user_type] == role.names(api=True)
            assert validation.SCHOOL_ID_FIELDS.get(user_type) == next(iter(role.names(rule=Rule.SCHOOL_ID)), None)
        assert set(validation.PHONE_FIELDS) == {n for r in ROLES.values() for n in r.names(rule=Rule.PHONE)}
        assert set(validation.ACADEMIC_FIELDS) == {n for r in ROLES.values() for n in r.names(rule=Rule.ACADEMIC_ID)}
        assert people_services.USER_FIELDS == USER_FIELDS

    def test_roster_columns_are_the_user_fields_then_the_roster_fields(self):
        expected = {t: (*USER_FIELDS, *r.names(roster=True)) for t, r in ROLES.items() if r.roster_import}

        assert expected == roster.ROSTER_COLUMNS
        assert set(roster.ROSTER_COLUMNS) == {UserType.STUDENT, UserType.STAFF}  # no roster of HODs
        assert roster.ROSTER_REQUIRED_COLUMNS == ("username", "email")

    def test_profile_patch_takes_the_self_editable_user_fields(self):
        assert set(ProfileUpdateInputSerializer().fields) == {*USER_SELF_EDITABLE_FIELDS, "profile"}

    def test_self_editable_lists_are_the_declared_ones(self):
        assert {f.name for f in USER_FIELDS_DECLARED if f.self_editable} == USER_SELF_EDITABLE_FIELDS
        assert {"first_name", "last_name", "email"} == USER_SELF_EDITABLE_FIELDS
        for user_type, role in ROLES.items():
            assert PROFILE_SELF_EDITABLE_FIELDS[user_type] == set(role.names(self_editable=True))
            assert set(role.names(self_editable=True)) <= set(role.names(api=True))

    def test_monolith_import_fields_are_the_declared_ones_and_its_source_mapping_yields_them(self):
        # given a source row of each profile table, as the monolith stores it
        rows = {
            "student_management_app_adminhod": {"id": 1, "admin_id": 1},
            "student_management_app_staffs": {"id": 2, "admin_id": 2, "address": "1 Road"},
            "student_management_app_students": {
                "id": 3,
                "admin_id": 3,
                "gender": "Female",
                "address": "2 Road",
                "course_id_id": "4",
                "session_year_id_id": "5",
                "profile_pic": "pics/3.png",
            },
        }
        for role in ROLES.values():
            # when the source mapping reads it
            values, problems = monolith_source._profile_values(
                role.model, rows[monolith_source.PROFILE_TABLES[role.model]]
            )

            # then it yields exactly the fields the target compares, which are the declared ones
            assert problems == []
            assert values is not None
            assert set(values) == set(monolith_target.PROFILE_FIELDS[role.model]) == set(role.names(monolith=True))

    def test_monolith_import_announces_changes_of_the_public_fields_it_owns(self):
        expected = set(monolith_target.USER_FIELDS) & set(PUBLIC_USER_FIELDS)

        assert expected == monolith_importer.USER_FIELDS_IN_JSON
        assert {"username", "email", "is_active", "date_joined"} <= expected


class TestPublicUserJson:
    def test_the_declaration_is_the_contract_with_other_services(self):
        # DESIGN.md section 6, written out once here: the declaration may not drift from the published contract
        assert tuple(PUBLIC_USER_FIELDS) == (
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "user_type",
            "role",
            "is_active",
            "email_verified",
            "date_joined",
        )

    def test_serializers_list_the_declared_keys(self):
        assert list(UserSerializer().fields) == list(PUBLIC_USER_FIELDS)
        assert list(UserWithProfileSerializer().fields) == [*PUBLIC_USER_FIELDS, "profile"]

    def test_the_schema_describes_the_declared_keys(self, api_client):
        response = api_client.get("/api/schema/?format=json")

        assert response.status_code == status.HTTP_200_OK
        component = json.loads(response.content)["components"]["schemas"]["User"]
        assert list(component["properties"]) == list(PUBLIC_USER_FIELDS)
        assert sorted(component["required"]) == sorted(PUBLIC_USER_FIELDS)

    @pytest.mark.django_db
    def test_every_builder_writes_the_declared_keys_in_order_with_the_same_values(self, make_user):
        # given users of every role
        users = [make_user(user_type=user_type) for user_type in ROLE_TYPES]
        ids = [user.pk for user in users]

        # when each builder writes their JSON
        from_python = [user_public_data(user) for user in users]
        from_rows = users_bulk_public(user_ids=ids)
        from_database = [json.loads(text) for _, text in users_public_json_rows(ids)]
        from_serializer = [UserSerializer(user).data for user in users]

        # then every one has the declared keys in the declared order, and the same values
        for built in (from_python, from_rows, from_database, from_serializer):
            assert [list(data) for data in built] == [list(PUBLIC_USER_FIELDS)] * len(users)
        assert from_rows == from_database == from_python == from_serializer


@pytest.mark.django_db
class TestEveryDeclaredFieldIsWritten:
    @pytest.mark.parametrize("user_type", ROLE_TYPES)
    def test_the_hod_api_creates_a_person_with_every_api_field(self, hod, user_type):
        # given a value for every field the declaration says the API writes
        role = ROLES[user_type]
        values = {name: sample(role, name) for name in role.names(api=True)}
        body = {"user": {"username": "newperson", "email": "new@school.test"}, **map_json(values)}

        # when an HOD creates the person
        response = bearer_client(hod).post(f"{API}/{ENDPOINTS[user_type]}/", body, format="json")

        # then every value is stored and returned
        assert response.status_code == status.HTTP_201_CREATED, response.content
        returned = response.json()
        stored = role.model.objects.get(pk=returned["id"])
        for name, value in values.items():
            assert returned[name] == as_json(value), name
            assert getattr(stored, name) == value, name

    @pytest.mark.parametrize("user_type", [t for t, r in ROLES.items() if r.roster_import])
    def test_the_roster_imports_every_roster_column(self, user_type):
        # given a file with every column of the role's roster, two rows
        role = ROLES[user_type]
        header = roster.ROSTER_COLUMNS[user_type]
        lines = [",".join(header)]
        for number in (1, 2):
            user = {"username": f"rostered{number}", "email": f"r{number}@school.test", "first_name": "R"}
            cells = [
                user.get(name, "") if name in USER_FIELDS else as_text(sample(role, name, number)) for name in header
            ]
            lines.append(",".join(cells))

        # when it is imported
        result = people_services.roster_import(user_type=user_type, content="\n".join(lines).encode())

        # then both people exist with every value
        assert result.errors == []
        assert result.created == 2
        stored = role.model.objects.get(user__username="rostered2")
        for name in role.names(roster=True):
            assert getattr(stored, name) == sample(role, name, 2), name

    @pytest.mark.parametrize("user_type", ROLE_TYPES)
    def test_a_person_may_change_exactly_their_self_editable_fields(self, make_user, user_type):
        # given a person of the role
        role = ROLES[user_type]
        person = make_user(user_type=user_type)
        editable = {name: sample(role, name, 9) for name in role.names(self_editable=True)}

        # when they change their self-editable fields, then each is stored
        profile_update(user=person, user_data={"first_name": "Changed"}, profile_data=dict(editable))
        stored = role.model.objects.get(user=person)
        for name, value in editable.items():
            assert getattr(stored, name) == value, name

        # and every other field the API writes is refused to them
        for name in set(role.names(api=True)) - set(editable):
            with pytest.raises(ValidationError) as refused:
                profile_update(user=person, user_data={}, profile_data={name: sample(role, name, 9)})
            assert f"profile.{name}" in str(refused.value), name


def map_json(values: dict[str, Any]) -> dict[str, Any]:
    return {name: as_json(value) for name, value in values.items()}
