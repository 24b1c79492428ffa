"""Django admin for HODs: users with their role profile inline, and login sessions."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from users.models import AdminHOD, CustomUser, Staff, Student, UserSession, UserType
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
