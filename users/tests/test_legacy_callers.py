"""Contract tests: calls made exactly as clients written to the original service's API make them.

Each test sends the method, path and body keys such a client sends (its register serializer's
``confirm_password``, SimpleJWT's ``refresh``, role creates nesting the user as ``admin`` or sending it flat) and
checks the keys it reads from the answer.
"""

import pytest
from rest_framework import status
from rest_framework.test import APIClient

from users.models import AdminHOD, CustomUser, Staff, Student, UserType

API = "/api/v1/users"
PASSWORD = "Quiet-river-stones-2024"
pytestmark = pytest.mark.django_db


def _post(client: APIClient, path: str, body: dict):
    return client.post(f"{API}/{path}", body, format="json")


class TestRegisterWithConfirmPassword:
    def _body(self, **overrides: str) -> dict:
        return {
            "username": "newbie",
            "email": "newbie@school.test",
            "password": PASSWORD,
            "confirm_password": PASSWORD,
            "first_name": "New",
            "last_name": "Bie",
            **overrides,
        }

    def test_matching_confirm_password_registers_and_logs_in(self, api_client):
        # given the original register serializer's body, confirm_password included
        # when it is posted
        response = _post(api_client, "register/", self._body())
        # then the Student exists, and the password given is the one login accepts
        assert response.status_code == status.HTTP_201_CREATED, response.content
        assert response.json()["email"] == "newbie@school.test"
        login = _post(api_client, "login/", {"username": "newbie@school.test", "password": PASSWORD})
        assert login.status_code == status.HTTP_200_OK

    def test_mismatched_confirm_password_is_refused_naming_it(self, api_client):
        # given a confirm_password that differs from password
        # when it is posted
        response = _post(api_client, "register/", self._body(confirm_password=PASSWORD + "x"))
        # then 400 names confirm_password, and nobody was created
        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "confirm_password" in response.json()
        assert not CustomUser.objects.filter(username="newbie").exists()


class TestSimpleJWTRefresh:
    def test_refresh_key_answers_access_and_refresh(self, api_client, student, login):
        # given a refresh token from login
        tokens = login(student)
        # when it is posted as SimpleJWT's view takes it
        response = _post(api_client, "token/refresh/", {"refresh": tokens["refresh_token"]})
        # then SimpleJWT's keys carry the new pair, the same as the service's own keys
        assert response.status_code == status.HTTP_200_OK, response.content
        body = response.json()
        assert body["access"] == body["access_token"]
        assert body["refresh"] == body["refresh_token"]
        assert body["refresh"] != tokens["refresh_token"]  # rotated
        # and the new access token is accepted
        me = APIClient()
        me.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
        assert me.get(f"{API}/profile/").status_code == status.HTTP_200_OK
        # and the rotated refresh token works under SimpleJWT's key again
        again = _post(api_client, "token/refresh/", {"refresh": body["refresh"]})
        assert again.status_code == status.HTTP_200_OK

    def test_refresh_token_key_answers_as_before(self, api_client, student, login):
        # given a refresh token sent under the service's own key
        tokens = login(student)
        # when refreshed
        response = _post(api_client, "token/refresh/", {"refresh_token": tokens["refresh_token"]})
        # then the answer has the service's keys only, as before
        assert response.status_code == status.HTTP_200_OK
        assert set(response.json()) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}


ROLE_CASES = [
    ("students/", Student, {"address": "1 School Lane", "gender": "F"}),
    ("staff/", Staff, {"address": "2 School Lane", "department": "Maths"}),
    ("admins/", AdminHOD, {"department": "Science"}),
]


@pytest.fixture
def hod_client(hod, client_for):
    return client_for(hod)


class TestRoleCreateNestedAsAdmin:
    @pytest.mark.parametrize(("path", "model", "profile"), ROLE_CASES)
    def test_admin_with_confirm_password_creates_the_person(self, hod_client, path, model, profile):
        # given the original service's body: the user nested as admin, with confirm_password
        admin = {
            "username": "legacy1",
            "email": "legacy1@school.test",
            "first_name": "Leg",
            "last_name": "Acy",
            "password": PASSWORD,
            "confirm_password": PASSWORD,
        }
        # when the HOD posts it
        response = _post(hod_client, path, {"admin": admin, **profile})
        # then the person exists with the profile, the reply carries the user, and the password logs in
        assert response.status_code == status.HTTP_201_CREATED, response.content
        body = response.json()
        assert body["user"]["username"] == "legacy1"
        assert body["user"]["email"] == "legacy1@school.test"
        person = model.objects.get(pk=body["id"])
        assert all(getattr(person, name) == value for name, value in profile.items())
        login = _post(APIClient(), "login/", {"username": "legacy1", "password": PASSWORD})
        assert login.status_code == status.HTTP_200_OK

    @pytest.mark.parametrize(("path", "model", "profile"), ROLE_CASES)
    def test_mismatched_confirm_password_is_refused(self, hod_client, path, model, profile):
        # given an admin object whose confirm_password differs
        admin = {"username": "legacy2", "email": "legacy2@school.test", "password": PASSWORD}
        admin["confirm_password"] = PASSWORD + "x"
        # when posted
        response = _post(hod_client, path, {"admin": admin, **profile})
        # then 400 names confirm_password (under admin, as it was sent), nothing created
        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "confirm_password" in response.json()["admin"]
        assert not CustomUser.objects.filter(username="legacy2").exists()

    def test_service_errors_are_named_under_admin(self, hod_client, make_user):
        # given an e-mail address already taken
        make_user(username="taken", email="taken@school.test")
        admin = {"username": "legacy3", "email": "taken@school.test", "password": PASSWORD}
        # when a staff member is created with it, nested as admin
        response = _post(hod_client, "staff/", {"admin": admin})
        # then the error is keyed where the caller sent the field
        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "email" in response.json()["admin"]


class TestRoleCreateFlat:
    def test_staff_flat_body_as_the_frontend_sends_it(self, hod_client):
        # given the frontend's flat staff body: no username
        body = {
            "email": "flat.staff@school.test",
            "password": PASSWORD,
            "first_name": "Flat",
            "last_name": "Staff",
            "address": "3 School Lane",
        }
        # when the HOD posts it
        response = _post(hod_client, "staff/", body)
        # then the staff member exists, username defaulting to the e-mail, and can log in with the e-mail
        assert response.status_code == status.HTTP_201_CREATED, response.content
        reply = response.json()
        assert reply["user"]["username"] == "flat.staff@school.test"
        assert reply["user"]["first_name"] == "Flat"
        staff = Staff.objects.select_related("user").get(pk=reply["id"])
        assert staff.address == "3 School Lane"
        assert staff.user.user_type == UserType.STAFF
        login = _post(APIClient(), "login/", {"username": "flat.staff@school.test", "password": PASSWORD})
        assert login.status_code == status.HTTP_200_OK

    @pytest.mark.parametrize(("path", "model", "profile"), ROLE_CASES)
    def test_flat_body_with_username_and_confirm_password(self, hod_client, path, model, profile):
        # given a flat body naming its username and repeating the password
        body = {
            "username": "flat1",
            "email": "flat1@school.test",
            "password": PASSWORD,
            "confirm_password": PASSWORD,
            **profile,
        }
        # when posted
        response = _post(hod_client, path, body)
        # then the person has that username and the profile
        assert response.status_code == status.HTTP_201_CREATED, response.content
        person = model.objects.select_related("user").get(pk=response.json()["id"])
        assert person.user.username == "flat1"
        assert all(getattr(person, name) == value for name, value in profile.items())

    def test_flat_mismatched_confirm_password_is_refused(self, hod_client):
        # given a flat body whose confirm_password differs
        body = {"email": "flat2@school.test", "password": PASSWORD, "confirm_password": "other-Password-99"}
        # when posted
        response = _post(hod_client, "students/", body)
        # then 400 names confirm_password at the top level, nothing created
        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "confirm_password" in response.json()
        assert not CustomUser.objects.filter(email="flat2@school.test").exists()

    def test_flat_unknown_key_is_refused(self, hod_client):
        # given a flat body with a key no form knows
        body = {"email": "flat3@school.test", "password": PASSWORD, "user_type": "2"}
        # when posted to staff/
        response = _post(hod_client, "staff/", body)
        # then it is named, as with every strict body
        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "user_type" in response.json()

    def test_flat_email_unfit_as_username_is_named(self, hod_client):
        # given a flat body without username whose e-mail is longer than a username may be
        email = "a" * 150 + "@school.test"
        # when posted
        response = _post(hod_client, "staff/", {"email": email, "password": PASSWORD})
        # then the 400 names the e-mail (the field sent) and nothing is created
        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "username" in response.json()["email"][0]
        assert not CustomUser.objects.filter(email=email).exists()

    def test_flat_service_errors_stay_flat(self, hod_client):
        # given a password the policy refuses
        body = {"email": "flat4@school.test", "password": "password"}
        # when a flat staff body carries it
        response = _post(hod_client, "staff/", body)
        # then the error is keyed at the top level, where the caller sent it
        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert "password" in response.json()

    def test_nested_user_form_unchanged(self, hod_client):
        # given today's nested body
        user = {"username": "nested1", "email": "nested1@school.test", "password": PASSWORD}
        # when posted
        response = _post(hod_client, "staff/", {"user": user, "address": "4 School Lane"})
        # then it is created as before, and mixing forms is refused
        assert response.status_code == status.HTTP_201_CREATED, response.content
        mixed = _post(hod_client, "staff/", {"user": {**user, "username": "n2"}, "email": "n2@school.test"})
        assert mixed.status_code == status.HTTP_400_BAD_REQUEST
        assert "email" in mixed.json()


class TestSchemaDescribesTheShapes:
    def test_role_create_is_one_of_three_closed_forms(self, api_client):
        # given the OpenAPI schema
        schema = api_client.get("/api/schema/?format=json").json()
        components = schema["components"]["schemas"]
        # when the staff create body is read
        body = schema["paths"][f"{API}/staff/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        ref = components[body["$ref"].rsplit("/", 1)[1]]
        forms = [components[branch["$ref"].rsplit("/", 1)[1]] for branch in ref["oneOf"]]
        # then the nested, admin and flat forms are each closed and told apart by a required key
        assert [form["required"] for form in forms] == [["user"], ["admin"], ["email"]]
        assert all(form["additionalProperties"] is False for form in forms)
        assert {"confirm_password", "address", "username"} <= set(forms[2]["properties"])
        register = schema["paths"][f"{API}/register/"]["post"]["requestBody"]["content"]["application/json"]
        assert "confirm_password" in components[register["schema"]["$ref"].rsplit("/", 1)[1]]["properties"]
        refresh = schema["paths"][f"{API}/token/refresh/"]["post"]["responses"]["200"]["content"]["application/json"]
        refreshed = components[refresh["schema"]["$ref"].rsplit("/", 1)[1]]
        assert {"access", "refresh"} <= set(refreshed["properties"])
        assert {"access_token", "refresh_token"} <= set(refreshed["required"])
        assert not {"access", "refresh"} & set(refreshed["required"])  # absent when refresh_token was sent
