"""The fixtures work against the real database and cache."""

from django.core.cache import cache

from users.models import Student


def test_student_fixture_has_profile(student):
    assert Student.objects.filter(user=student).exists()


def test_cache_round_trip():
    cache.set("k", "v")
    assert cache.get("k") == "v"
