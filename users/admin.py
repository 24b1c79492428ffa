"""Django admin for HODs: users with their role profile inline, and login sessions."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin

from users.exceptions import RevocationUnavailable
from users.models import AdminHOD, CustomUser, Staff, Student, UserSession, UserType
from users.services.people import (
    PersonChangeRefused,
    invitation_resend,
    person_created_in_admin,
    person_deactivate,
    person_reactivate,
)
from users.services.users import user_profile_ensure


class HODPermissionsMixin:
    """HODs run the school: every HOD may manage these models without per-model permissions."""

    def _is_hod(self, request) -> bool:
        return request.user.is_active and request.user.user_type == UserType.HOD

    def has_module_permission(self, request) -> bool:
        return self._is_hod(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._is_hod(request)

    def has_add_permission(self, request, *args) -> bool:
        return self._is_hod(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._is_hod(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._is_hod(request)


class AdminHODInline(admin.StackedInline):
    model = AdminHOD
    can_delete = False
    extra = 0


class StaffInline(admin.StackedInline):
    model = Staff
    can_delete = False
    extra = 0


class StudentInline(admin.StackedInline):
    model = Student
    can_delete = False
    extra = 0


_INLINES = {UserType.HOD: AdminHODInline, UserType.STAFF: StaffInline, UserType.STUDENT: StudentInline}


@admin.register(CustomUser)
class CustomUserAdmin(HODPermissionsMixin, UserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "user_type", "is_active", "date_joined")
    list_filter = ("user_type", "is_active", "email_verified", "date_joined")
    search_fields = ("username", "email", "first_name", "last_name")
    ordering = ("-date_joined",)
    readonly_fields = ("last_login", "date_joined", "created_at", "updated_at", "deactivated_at")
    fieldsets = (
        *UserAdmin.fieldsets,
        ("Role", {"fields": ("user_type", "email_verified", "created_at", "updated_at", "deactivated_at")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "user_type", "password1", "password2")}),
    )

    def get_inlines(self, request, obj=None):
        return [] if obj is None else [_INLINES[obj.user_type]]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        user_profile_ensure(user=obj)


@admin.register(UserSession)
class UserSessionAdmin(HODPermissionsMixin, admin.ModelAdmin):
    list_display = ("id", "user", "created_at", "last_used_at", "expires_at", "ip", "ended_at", "end_reason")
    list_filter = ("end_reason",)
    search_fields = ("user__username", "user__email", "ip")
    list_select_related = ("user",)
    readonly_fields = [f.name for f in UserSession._meta.fields]

    def has_add_permission(self, request, *args) -> bool:
        return False


# --- People management for HODs: actions that go through the services (sessions end, events are written) ---


class PeopleActionsMixin:
    """Deactivate, reactivate and resend-invitation actions for a changelist of users or of profiles."""

    actions = ["deactivate_selected", "reactivate_selected", "resend_invitation"]

    def _users_of(self, queryset) -> list[CustomUser]:
        if queryset.model is CustomUser:
            return list(queryset)
        return [profile.user for profile in queryset.select_related("user")]

    @admin.action(description="Deactivate selected people (their sessions end at once)")
    def deactivate_selected(self, request, queryset) -> None:
        done, refused = 0, []
        for user in self._users_of(queryset):
            try:
                done += person_deactivate(user=user, actor=request.user)
            except (PersonChangeRefused, RevocationUnavailable) as exc:
                refused.append(f"{user.username}: {exc.message}")
        self.message_user(request, f"{done} deactivated.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    @admin.action(description="Reactivate selected people")
    def reactivate_selected(self, request, queryset) -> None:
        done = sum(person_reactivate(user=user, actor=request.user) for user in self._users_of(queryset))
        self.message_user(request, f"{done} reactivated.", messages.SUCCESS)

    @admin.action(description="Resend the invitation e-mail (people who have not set a password)")
    def resend_invitation(self, request, queryset) -> None:
        users = self._users_of(queryset)
        sent = sum(invitation_resend(user=user) for user in users)
        level = messages.SUCCESS if sent else messages.WARNING
        self.message_user(
            request, f"{sent} invitation(s) queued; {len(users) - sent} skipped (inactive or password set).", level
        )


class PeopleUserAdmin(PeopleActionsMixin, CustomUserAdmin):
    """Users, with activity changed only through the actions (so sessions end and events are written)."""

    list_filter = ("user_type", "is_active", "email_verified", "date_joined", "deactivated_at")
    readonly_fields = (*CustomUserAdmin.readonly_fields, "is_active")
    show_full_result_count = False  # no second COUNT(*) over the whole table on every page

    def get_readonly_fields(self, request, obj=None):
        # A role is chosen at creation: changing user_type later would strand the old role's profile.
        return (*self.readonly_fields, "user_type") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            person_created_in_admin(user=obj, actor=request.user)


admin.site.unregister(CustomUser)
admin.site.register(CustomUser, PeopleUserAdmin)


class ProfileAdmin(PeopleActionsMixin, HODPermissionsMixin, admin.ModelAdmin):
    """A role profile: created with its user (never on its own), edited here, its user linked by id."""

    list_select_related = ("user",)
    raw_id_fields = ("user",)
    show_full_result_count = False
    _user_search = ("user__username", "user__email", "user__first_name", "user__last_name")

    @admin.display(description="name", ordering="user__last_name")
    def full_name(self, obj) -> str:
        return obj.user.get_full_name()

    @admin.display(description="e-mail", ordering="user__email")
    def email(self, obj) -> str:
        return obj.user.email

    @admin.display(description="active", boolean=True, ordering="user__is_active")
    def is_active(self, obj) -> bool:
        return obj.user.is_active

    def has_add_permission(self, request, *args) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return ("user", "created_at", "updated_at") if obj else ("created_at", "updated_at")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # a user without its profile is broken: deactivate instead
        return actions


@admin.register(Student)
class StudentAdmin(ProfileAdmin):
    list_display = ("id", "student_id", "user", "full_name", "email", "course_id", "session_year_id", "is_active")
    list_filter = ("user__is_active", "gender", "course_id", "session_year_id")
    search_fields = ("student_id", *ProfileAdmin._user_search)


@admin.register(Staff)
class StaffAdmin(ProfileAdmin):
    list_display = ("id", "employee_id", "user", "full_name", "email", "department", "designation", "is_active")
    list_filter = ("user__is_active", "department")
    search_fields = ("employee_id", "department", *ProfileAdmin._user_search)


@admin.register(AdminHOD)
class AdminHODAdmin(ProfileAdmin):
    list_display = ("id", "user", "full_name", "email", "department", "phone_number", "is_active")
    list_filter = ("user__is_active", "department")
    search_fields = ("department", *ProfileAdmin._user_search)
