"""The request edge (users/api/parsers.py, URLTextMiddleware): JSON depth and Unicode rules, URL-encoded text."""

import time

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework import status
from rest_framework.exceptions import ParseError

from conftest import TEST_PASSWORD
from users.api.parsers import json_loads, json_nesting_exceeds, urlencoded_text_error
from users.models import Student, UserType

API = "/api/v1/users"


def nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


class TestJSONDepth:
    def test_nesting_up_to_the_limit_is_parsed(self, settings) -> None:
        settings.JSON_MAX_DEPTH = 5

        assert json_loads(nested(5)) == [[[[[]]]]]
        assert json_loads(b'{"a": {"b": {"c": {"d": [1]}}}}') == {"a": {"b": {"c": {"d": [1]}}}}

    def test_one_level_more_is_a_parse_error_naming_the_limit(self, settings) -> None:
        settings.JSON_MAX_DEPTH = 5

        with pytest.raises(ParseError, match="deeper than 5 levels"):
            json_loads(b'{"a": {"b": {"c": {"d": [[1]]}}}}')

    def test_brackets_inside_strings_do_not_count(self, settings) -> None:
        settings.JSON_MAX_DEPTH = 2
        text = '{"a": "[[[[{{{{", "b": ["\\"[[[[", "]]]]"]}'

        assert not json_nesting_exceeds(text, 2)
        assert json_loads(text.encode()) == {"a": "[[[[{{{{", "b": ['"[[[[', "]]]]"]}

    def test_nesting_far_past_the_interpreters_recursion_limit_is_refused_quickly(self) -> None:
        started = time.perf_counter()

        with pytest.raises(ParseError, match="deeper than"):
            json_loads(nested(500_000))

        assert time.perf_counter() - started < 1

    def test_the_default_limit_comes_from_settings(self, settings) -> None:
        assert settings.JSON_MAX_DEPTH == 32
        assert json_loads(nested(32))
        with pytest.raises(ParseError):
            json_loads(nested(33))


class TestJSONText:
    @pytest.mark.parametrize(
        "body",
        [
            b'{"\\ud800": 1}',
            b'{"a": "x\\udfff"}',
            b'{"a": ["ok", {"b": "\\uDBFF"}]}',
            b'{"a": "\\ude00\\ud83d"}',  # the two halves of a pair, in the wrong order
        ],
    )
    def test_lone_surrogates_in_keys_or_values_are_refused(self, body) -> None:
        with pytest.raises(ParseError, match="not valid Unicode"):
            json_loads(body)

    def test_a_surrogate_pair_is_one_character_and_accepted(self) -> None:
        assert json_loads(b'{"name": "\\ud83d\\ude00"}') == {"name": "\U0001f600"}

    def test_an_escaped_backslash_before_u_is_plain_text(self) -> None:
        assert json_loads(b'{"a": "\\\\ud800 \\\\u0000"}') == {"a": "\\ud800 \\u0000"}

    @pytest.mark.parametrize("body", [b'{"a": "x\\u0000"}', b'{"a\\u0000": 1}'])
    def test_nul_is_refused(self, body) -> None:
        with pytest.raises(ParseError, match="NUL"):
            json_loads(body)

    @pytest.mark.parametrize("body", [b'{"a": "\xff"}', b'{"a": "\xed\xa0\x80"}', b'{"a": "\xc3"}'])
    def test_bytes_that_are_not_utf8_are_refused(self, body) -> None:
        with pytest.raises(ParseError, match="not valid Unicode"):
            json_loads(body)

    @pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e999}'])
    def test_numbers_json_cannot_carry_are_refused(self, body) -> None:
        with pytest.raises(ParseError):
            json_loads(body)

    def test_ordinary_unicode_is_untouched(self) -> None:
        assert json_loads('{"name": "Zoë Ōkubo 山田", "n": 1.5}'.encode()) == {"name": "Zoë Ōkubo 山田", "n": 1.5}


class TestURLEncodedText:
    @pytest.mark.parametrize("raw", ["q=%ED%A0%80", "q=%FF", "q=a%C3", "%ED%A0%80=1", "q=%C0%AF"])
    def test_percent_encoded_bytes_that_are_not_utf8_are_refused(self, raw) -> None:
        assert urlencoded_text_error(raw) is not None
        assert urlencoded_text_error(raw.encode()) is not None

    @pytest.mark.parametrize("raw", ["q=%00", "a%00=1", "q=ab%00"])
    def test_nul_is_refused(self, raw) -> None:
        assert "NUL" in (urlencoded_text_error(raw) or "")

    @pytest.mark.parametrize("raw", ["", "q=", "ordering=,", "q=Zo%C3%AB+%C5%8Ckubo", "a=1&b=%2B%25", "q=%F0%9F%98%80"])
    def test_valid_text_passes(self, raw) -> None:
        assert urlencoded_text_error(raw) is None

    def test_raw_utf8_bytes_as_wsgi_hands_them_over_pass(self) -> None:
        assert urlencoded_text_error("q=Zoë".encode().decode("iso-8859-1")) is None
        assert urlencoded_text_error(b"q=\xed\xa0\x80".decode("iso-8859-1")) is not None


@pytest.mark.django_db
class TestURLTextMiddleware:
    @pytest.mark.parametrize("query", ["search=%00", "search=%ED%A0%80", "ordering=%FF"])
    def test_query_string_is_refused_before_authentication(self, query) -> None:
        response = Client().get(f"{API}/users/?{query}")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["code"] == "invalid_encoding"

    def test_the_fast_validate_token_path_is_behind_it(self) -> None:
        response = Client().get(f"{API}/validate-token/?x=%ED%A0%80")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["code"] == "invalid_encoding"

    @pytest.mark.parametrize("path", ["/admin/users/customuser/1%00/change/", f"{API}/user/1%00/", "/metrics%00"])
    def test_a_path_holding_a_nul_names_nothing(self, client, hod, path) -> None:
        assert client.login(username=hod.username, password=TEST_PASSWORD)

        response = client.get(path)

        assert response.status_code == status.HTTP_404_NOT_FOUND
        assert response.json() == {"detail": "Not found.", "code": "not_found"}

    @pytest.mark.parametrize("path", ["%ED%A0%80", "%25ED%25A0%2580", "%C3%A9", "%FF"])
    def test_a_path_that_is_not_utf8_names_no_route(self, path) -> None:
        # Django percent-encodes such bytes again, so they reach the resolver as plain text.
        assert Client().get(f"{API}/user/{path}/").status_code == status.HTTP_404_NOT_FOUND

    @pytest.mark.parametrize("query", ["q=%00", "q=%ED%A0%80", "o=%00"])
    def test_the_admin_is_behind_it(self, client, hod, query) -> None:
        assert client.login(username=hod.username, password=TEST_PASSWORD)

        response = client.get(f"/admin/users/customuser/?{query}")

        assert response.status_code == status.HTTP_400_BAD_REQUEST

    def test_ordinary_unicode_queries_pass(self, client, hod) -> None:
        assert client.login(username=hod.username, password=TEST_PASSWORD)

        assert client.get("/admin/users/customuser/?q=Zo%C3%AB").status_code == status.HTTP_200_OK


@pytest.mark.django_db
class TestFormBodies:
    @pytest.mark.parametrize("body", ["client_id=%ED%A0%80&client_secret=x", "client_id=a%00&client_secret=x"])
    def test_form_text_follows_the_same_rule(self, api_client, body) -> None:
        response = api_client.post(f"{API}/service-token/", body, content_type="application/x-www-form-urlencoded")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json()["code"] == "parse_error"

    def test_too_many_form_fields_is_a_400(self, api_client) -> None:
        body = "&".join(f"f{i}=1" for i in range(1100))

        response = api_client.post(f"{API}/service-token/", body, content_type="application/x-www-form-urlencoded")

        assert response.status_code == status.HTTP_400_BAD_REQUEST
        assert response.json() == {"detail": "Too many parameters or fields.", "code": "bad_request"}

    def test_too_many_query_parameters_is_a_400(self, api_client) -> None:
        query = "&".join(f"f{i}=1" for i in range(1100))

        assert api_client.get(f"{API}/users/?{query}").status_code == status.HTTP_400_BAD_REQUEST


@pytest.mark.django_db
class TestProfileNotNull:
    def test_null_for_a_not_null_text_field_is_a_field_error(self, student) -> None:
        profile = Student.objects.get(user=student)
        profile.address = None  # type: ignore[assignment]  # the wrong type is the point

        with pytest.raises(ValidationError, match="cannot be null") as caught:
            profile.full_clean()

        assert caught.value.message_dict == {"address": ["This field cannot be null."]}

    def test_text_fields_refuse_values_that_are_not_text(self, student) -> None:
        profile = Student.objects.get(user=student)
        profile.address, profile.phone_number = {"a": 1}, ["x"]  # type: ignore[assignment]  # the point

        with pytest.raises(ValidationError, match="Enter text") as caught:
            profile.full_clean()

        assert set(caught.value.message_dict) == {"address", "phone_number"}

    def test_nullable_fields_and_a_new_profile_still_validate(self, make_user) -> None:
        user = make_user(user_type=UserType.STUDENT)
        Student.objects.filter(user=user).delete()

        Student(user=user, student_id=None, date_of_birth=None, course_id=None).full_clean()
