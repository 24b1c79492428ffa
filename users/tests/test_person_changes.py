"""The owners of each kind of change to a person, called without HTTP: what each one writes besides the change."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from conftest import TEST_PASSWORD
from users import cache as user_cache
from users.models import (
    AdminHOD,
    CustomUser,
    EventType,
    OutboxMessage,
    SecurityEvent,
    SessionEndReason,
    UserSession,
    UserType,
)
from users.services import outbox
from users.services.auth import session_start
from users.services.people import (
    PersonChangeRefused,
    activation,
    password_change,
    password_set_by_admin,
    password_set_by_reset,
    passwords,
    passwords_set_by_import,
    person_change,
    profile_change,
    update,
    user_create,
    user_deactivate,
    user_email_change,
    user_fields_change,
    user_reactivate,
    users_activity_set_by_import,
    users_created_rows,
)

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "another-Long-passphrase-77"


@pytest.fixture
def invalidated(monkeypatch) -> list[int]:
    """The user ids each owner asks to drop from the cache (signals on save() are not counted)."""
    calls: list[int] = []
    for module in (activation, passwords, update):
        original = module.user_invalidate

        def spy(*, user_id: int, _original=original) -> None:
            calls.append(user_id)
            _original(user_id=user_id)

        monkeypatch.setattr(module, "user_invalidate", spy)
    return calls


def open_session(user: CustomUser) -> UserSession:
    return session_start(user=user, ip=None, user_agent="test").session


def topics_of(user: CustomUser) -> list[str]:
    return sorted(OutboxMessage.objects.filter(payload__user_id=user.pk).values_list("topic", flat=True))


def audit_of(user: CustomUser) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(user=user).order_by("created_at"))


class TestPasswordSet:
    def test_by_an_hod_ends_every_session_and_writes_audit_event_and_email(self, hod, student, invalidated):
        sessions = [open_session(student), open_session(student)]
        user_cache.user_snapshot_get(student.pk, load=lambda user_id: {"cached": True})

        password_set_by_admin(user=student, password=NEW_PASSWORD, actor=hod, ip="10.0.0.1")

        student.refresh_from_db()
        assert student.check_password(NEW_PASSWORD)
        for session in sessions:
            session.refresh_from_db()
            assert session.end_reason == SessionEndReason.PASSWORD_CHANGED
        record = SecurityEvent.objects.get(user=student, type=SecurityEvent.Type.PASSWORD_CHANGED)
        assert (record.actor, record.ip, record.data) == (hod, "10.0.0.1", {"via": "admin"})
        event = OutboxMessage.objects.get(topic=EventType.USER_PASSWORD_CHANGED, payload__user_id=student.pk)
        assert event.payload["data"] == {"via": "admin"}
        assert OutboxMessage.objects.filter(topic="password_changed", payload__user_id=student.pk).exists()
        assert student.pk in invalidated
        assert user_cache.user_snapshot_get(student.pk, load=lambda user_id: {"reloaded": True}) == {"reloaded": True}

    def test_by_an_hod_without_a_password_makes_it_unusable(self, hod, student):
        open_session(student)

        password_set_by_admin(user=student, password=None, actor=hod)

        student.refresh_from_db()
        assert not student.has_usable_password()
        assert not UserSession.objects.filter(user=student, ended_at__isnull=True).exists()

    def test_the_policy_refuses_a_weak_password_and_nothing_is_written(self, hod, student):
        session = open_session(student)

        with pytest.raises(ValidationError) as caught:
            password_set_by_admin(user=student, password="short", actor=hod)

        assert "password" in caught.value.message_dict
        student.refresh_from_db()
        session.refresh_from_db()
        assert student.check_password(TEST_PASSWORD)
        assert session.ended_at is None
        assert topics_of(student) == []

    def test_by_the_owner_keeps_their_current_session(self, student):
        current, other = open_session(student), open_session(student)

        password_change(
            user=student,
            old_password=TEST_PASSWORD,
            new_password=NEW_PASSWORD,
            confirm_password=NEW_PASSWORD,
            current_session_id=str(current.id),
        )

        current.refresh_from_db()
        other.refresh_from_db()
        assert (current.ended_at, other.end_reason) == (None, SessionEndReason.PASSWORD_CHANGED)
        assert [r.data for r in audit_of(student)] == [{"via": "change"}]
        assert topics_of(student) == ["password_changed", "user.password_changed"]

    def test_by_reset_proves_the_address_and_is_audited_as_a_reset(self, student):
        CustomUser.objects.filter(pk=student.pk).update(email_verified=False)
        session = open_session(student)

        password_set_by_reset(user=student, new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD)

        student.refresh_from_db()
        session.refresh_from_db()
        assert student.email_verified is True
        assert session.end_reason == SessionEndReason.PASSWORD_CHANGED
        assert [r.type for r in audit_of(student)] == [SecurityEvent.Type.PASSWORD_RESET]

    def test_by_import_ends_sessions_audits_and_drops_the_cache(self, student, invalidated):
        session = open_session(student)

        ended = passwords_set_by_import(user_ids=[student.pk])

        session.refresh_from_db()
        assert ended == 1
        assert session.end_reason == SessionEndReason.PASSWORD_CHANGED
        assert [(r.type, r.data) for r in audit_of(student)] == [
            (SecurityEvent.Type.PASSWORD_CHANGED, {"via": "import"})
        ]
        assert invalidated == [student.pk]


class TestCreate:
    def test_writes_the_event_the_audit_record_and_the_invitation(self, hod):
        user = user_create(
            username="new", email="new@school.test", password=None, user_type=UserType.STAFF, actor=hod, source="t"
        )

        assert user.staff_profile is not None
        assert topics_of(user) == ["invitation", "user.created"]
        event = OutboxMessage.objects.get(topic=EventType.USER_CREATED, payload__user_id=user.pk)
        assert event.payload["data"] == {"user_type": UserType.STAFF, "source": "t"}
        record = SecurityEvent.objects.get(user=user)
        assert (record.type, record.actor, record.data) == (
            SecurityEvent.Type.USER_CREATED,
            hod,
            {"user_type": UserType.STAFF, "via": "t"},
        )

    def test_the_password_policy_applies(self):
        with pytest.raises(ValidationError) as caught:
            user_create(username="weak", email="weak@school.test", password="12345678", source="t")

        assert "password" in caught.value.message_dict
        assert not CustomUser.objects.filter(username="weak").exists()

    def test_batch_form_builds_the_same_rows(self, hod, make_user):
        invited = make_user(password="")

        messages, audit = users_created_rows(users=[invited], actor=hod, source="roster_import")

        assert [(m["kind"], m["topic"]) for m in messages] == [("email", "invitation"), ("event", "user.created")]
        assert messages[1]["payload"]["user"]["id"] == invited.pk
        assert [(a["type"], a["user_id"], a["actor_id"]) for a in audit] == [
            (SecurityEvent.Type.USER_CREATED, invited.pk, hod.pk)
        ]

    def test_createsuperuser_makes_an_hod_with_profile_through_the_owner(self, monkeypatch):
        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", TEST_PASSWORD)

        call_command("createsuperuser", "--noinput", username="root", email="root@school.test", verbosity=0)

        root = CustomUser.objects.get(username="root")
        assert (root.user_type, root.is_superuser, root.is_staff) == (UserType.HOD, True, True)
        assert AdminHOD.objects.filter(user=root).exists()
        assert root.check_password(TEST_PASSWORD)
        event = OutboxMessage.objects.get(topic=EventType.USER_CREATED, payload__user_id=root.pk)
        assert event.payload["data"]["source"] == "createsuperuser"
        assert SecurityEvent.objects.filter(user=root, type=SecurityEvent.Type.USER_CREATED).exists()

    def test_createsuperuser_without_email_is_refused(self):
        with pytest.raises(CommandError, match="--email"):
            call_command("createsuperuser", "--noinput", username="root", verbosity=0)

        assert not CustomUser.objects.filter(username="root").exists()

    def test_the_manager_builds_the_user_and_its_profile_and_nothing_else(self):
        user = CustomUser.objects.create_user("kim", "kim@school.test", TEST_PASSWORD, user_type=UserType.STAFF)

        assert user.staff_profile.user_id == user.pk
        assert user.check_password(TEST_PASSWORD)
        assert not OutboxMessage.objects.filter(payload__user_id=user.pk).exists()  # side effects: the service's
        assert not SecurityEvent.objects.filter(user=user).exists()


class TestFieldsEmailProfile:
    def test_email_change_unverifies_sends_the_link_and_announces_once(self, hod, student, invalidated):
        CustomUser.objects.filter(pk=student.pk).update(email_verified=True)

        fields = user_email_change(user=student, email="moved@school.test", actor=hod)

        student.refresh_from_db()
        assert fields == ["email"]
        assert (student.email, student.email_verified) == ("moved@school.test", False)
        assert topics_of(student) == ["user.updated", "verify_email"]
        assert invalidated == [student.pk]
        records = {r.type: (r.actor, r.data) for r in audit_of(student)}
        assert records == {
            SecurityEvent.Type.USER_UPDATED: (hod, {"fields": ["email"]}),
            SecurityEvent.Type.EMAIL_CHANGED: (hod, {"from": "student@school.test", "to": "moved@school.test"}),
        }

    def test_email_taken_case_insensitively_is_refused(self, student, staff):
        with pytest.raises(ValidationError) as caught:
            user_email_change(user=student, email=staff.email.upper())

        assert "email" in caught.value.message_dict
        assert topics_of(student) == []

    def test_admin_rights_change_is_audited(self, hod, staff):
        user_fields_change(user=staff, changes={"is_staff": True}, actor=hod)

        record = SecurityEvent.objects.get(user=staff, type=SecurityEvent.Type.ROLE_CHANGED)
        assert (record.type, record.actor, record.data) == (
            SecurityEvent.Type.ROLE_CHANGED,
            hod,
            {"is_staff": {"from": False, "to": True}},
        )

    @pytest.mark.parametrize("name", ["is_active", "password", "user_type"])
    def test_fields_with_their_own_owner_are_refused(self, student, name):
        with pytest.raises(ValidationError) as caught:
            user_fields_change(user=student, changes={name: "x"})

        assert caught.value.message_dict == {name: ["This field cannot be changed here."]}

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"phone_number": "call me"}, "phone_number"),
            ({"date_of_birth": timezone.localdate() + timedelta(days=1)}, "date_of_birth"),
            ({"student_id": "S-TAKEN"}, "student_id"),
        ],
    )
    def test_profile_change_applies_the_api_rules(self, student, make_user, changes, field):
        other = make_user(user_type=UserType.STUDENT)
        other.student_profile.student_id = "S-TAKEN"
        other.student_profile.save()

        with pytest.raises(ValidationError) as caught:
            profile_change(user=student, changes=changes)

        assert field in caught.value.message_dict
        assert topics_of(student) == []

    def test_profile_change_normalises_and_announces(self, student, invalidated):
        fields = profile_change(user=student, changes={"phone_number": " +254 700 000 001 "})

        student.student_profile.refresh_from_db()
        assert fields == ["phone_number"]
        assert student.student_profile.phone_number == "+254 700 000 001"
        event = OutboxMessage.objects.get(topic=EventType.USER_UPDATED, payload__user_id=student.pk)
        assert event.payload["data"] == {"fields": ["phone_number"]}
        assert invalidated == [student.pk]

    def test_user_and_profile_fields_together_make_one_event(self, student):
        person_change(user=student, user_changes={"first_name": "Ada"}, profile_changes={"address": "1 Road"})

        events = OutboxMessage.objects.filter(topic=EventType.USER_UPDATED, payload__user_id=student.pk)
        assert [e.payload["data"] for e in events] == [{"fields": ["address", "first_name"]}]
        assert [(r.type, r.data) for r in audit_of(student)] == [
            (SecurityEvent.Type.USER_UPDATED, {"fields": ["address", "first_name"]})
        ]

    def test_nothing_changed_writes_nothing(self, student):
        assert person_change(user=student, user_changes={"first_name": student.first_name}) == []
        assert topics_of(student) == []
        assert audit_of(student) == []


class TestActivation:
    def test_deactivate_ends_sessions_audits_announces_and_drops_the_cache(self, hod, student, invalidated):
        session = open_session(student)

        assert user_deactivate(user=student, actor=hod) is True

        student.refresh_from_db()
        session.refresh_from_db()
        assert (student.is_active, session.end_reason) == (False, SessionEndReason.DEACTIVATED)
        assert [(r.type, r.actor) for r in audit_of(student)] == [(SecurityEvent.Type.USER_DEACTIVATED, hod)]
        assert topics_of(student) == ["user.deactivated"]
        assert invalidated == [student.pk]

    def test_reactivate(self, hod, student):
        user_deactivate(user=student, actor=hod)

        assert user_reactivate(user=student, actor=hod) is True

        student.refresh_from_db()
        assert (student.is_active, student.deactivated_at) == (True, None)
        assert topics_of(student) == ["user.deactivated", "user.reactivated"]

    def test_nobody_deactivates_themselves(self, hod, make_user):
        make_user(user_type=UserType.HOD)

        with pytest.raises(PersonChangeRefused):
            user_deactivate(user=hod, actor=hod)

    def test_by_import_ends_sessions_of_the_deactivated_and_audits_both(self, student, staff):
        session = open_session(student)

        ended = users_activity_set_by_import(deactivated_ids=[student.pk], reactivated_ids=[staff.pk])

        session.refresh_from_db()
        assert (ended, session.end_reason) == (1, SessionEndReason.DEACTIVATED)
        assert [r.type for r in audit_of(student)] == [SecurityEvent.Type.USER_DEACTIVATED]
        assert [r.type for r in audit_of(staff)] == [SecurityEvent.Type.USER_REACTIVATED]


def test_an_event_type_outside_event_type_is_refused(student):
    with pytest.raises(ValueError, match="unknown event type"):
        outbox.event_enqueue(event_type="user.renamed", user=student)
