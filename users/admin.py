"""Django admin for HODs: users with their role profile inline, and login sessions.

Every change goes through the owners in ``users.services.people``, like the API's: the forms check with the owners'
rules (``user_changes_check``, ``profile_changes_check``) and saving calls the owners, which end sessions and write
audit records, events, e-mails and cache invalidation. The admin never deletes a person: delete deactivates.
Sensitive changes (``users.services.step_up``: creating an HOD, a new e-mail address, setting a password, resetting
someone's factors) first ask "confirm it's you" unless the HOD authenticated recently (``users.admin_auth.step_up``).
"""

from contextvars import ContextVar
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, UserChangeForm
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from users.admin_auth.step_up import step_up_redirect
from users.exceptions import FactorConflict
from users.http import client_ip, user_agent
from users.models import PROFILE_MODELS, AdminHOD, CustomUser, ProfileBase, Staff, Student, UserSession, UserType
from users.services import mfa
from users.services.people import (
    PersonChangeRefused,
    invitation_resend,
    password_set_by_admin,
    person_change,
    profile_change,
    profile_changes_check,
    user_changes_check,
    user_create,
    user_deactivate,
    user_reactivate,
)
from users.services.step_up import email_change_needs_step_up, person_create_needs_step_up

_USER_TYPE_OF: dict[type[ProfileBase], int] = {model: user_type for user_type, model in PROFILE_MODELS.items()}
_M2M_FIELDS = frozenset({"groups", "user_permissions"})
# Who is setting a password in the admin's password form (Django builds that form with the user and the data only).
_password_setter: ContextVar[tuple[CustomUser | None, str | None]] = ContextVar("admin_password_setter")


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


def _actor(request: HttpRequest) -> CustomUser | None:
    """The person acting in the admin (only signed-in HODs get this far)."""
    return request.user if isinstance(request.user, CustomUser) else None


def _add_errors(form: forms.BaseForm, errors: dict[str, list[str]]) -> None:
    for name, messages_ in errors.items():
        for message in messages_:
            form.add_error(name if name in form.fields else None, message)


# --- Forms: the owners' rules, so the admin refuses what the API refuses ------------------------


class ProfileForm(forms.ModelForm):
    """A role profile's form (page or inline): checked with the API's rules; ``profile_changes`` for the owner."""

    profile_changes: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        model = self._meta.model
        changes = {name: cleaned[name] for name in self.changed_data if name in cleaned and name != "user"}
        user_id = self.instance.user_id if self.instance.pk else None
        before = model.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        errors = profile_changes_check(user_type=_USER_TYPE_OF[model], user_id=user_id, changes=changes, before=before)
        _add_errors(self, errors)
        cleaned.update(changes)  # normalised (phone numbers, empty school ids)
        self.profile_changes = changes
        return cleaned


class PersonChangeForm(UserChangeForm):
    """The user's change form: checked with the owner's rules; ``user_changes`` for the owner."""

    user_changes: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        changes = {name: cleaned[name] for name in self.changed_data if name in cleaned and name not in _M2M_FIELDS}
        if self.instance.pk:
            current = CustomUser.objects.get(pk=self.instance.pk)
            _add_errors(self, user_changes_check(user=current, changes=changes))
        cleaned.update(changes)
        self.user_changes = changes
        return cleaned


class PasswordSetForm(AdminPasswordChangeForm):
    """The admin's password form: saving sets the password through the owner (sessions end, audit, event, e-mail)."""

    def save(self, commit: bool = True) -> CustomUser:
        actor, ip = _password_setter.get((None, None))
        password = self.cleaned_data["password1"] if self.cleaned_data["set_usable_password"] else None
        self.user = password_set_by_admin(user=self.user, password=password, actor=actor, ip=ip)
        return self.user


class AdminHODInline(HODPermissionsMixin, admin.StackedInline):
    model = AdminHOD
    form = ProfileForm
    can_delete = False
    extra = 0


class StaffInline(HODPermissionsMixin, admin.StackedInline):
    model = Staff
    form = ProfileForm
    can_delete = False
    extra = 0


class StudentInline(HODPermissionsMixin, admin.StackedInline):
    model = Student
    form = ProfileForm
    can_delete = False
    extra = 0


_INLINES = {UserType.HOD: AdminHODInline, UserType.STAFF: StaffInline, UserType.STUDENT: StudentInline}


# --- People: actions and delete, through the owners ---------------------------------------------


class PeopleActionsMixin(admin.ModelAdmin):
    """Deactivate, reactivate and resend-invitation actions; delete (action and page) deactivates instead."""

    actions = ["deactivate_selected", "reactivate_selected", "resend_invitation"]

    def _user_of(self, obj: CustomUser | ProfileBase) -> CustomUser:
        return obj if isinstance(obj, CustomUser) else obj.user

    def _users_of(self, queryset: QuerySet) -> list[CustomUser]:
        if queryset.model is CustomUser:
            return list(queryset)
        return [profile.user for profile in queryset.select_related("user")]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if "delete_selected" in actions:  # deleting a person is deactivating them
            # The stubs type an action as returning str; Django's return None or a response.
            actions["delete_selected"] = (  # type: ignore[assignment]
                type(self).deactivate_selected,
                "delete_selected",
                "Delete selected people (deactivates them: the rows are kept, their sessions end)",
            )
        return actions

    @admin.action(description="Deactivate selected people (their sessions end at once)")
    def deactivate_selected(self, request, queryset) -> None:
        done, refused = 0, []
        for user in self._users_of(queryset):
            try:
                done += user_deactivate(user=user, actor=_actor(request))
            except PersonChangeRefused as exc:
                refused.append(f"{user.username}: {exc.message}")
        self.message_user(request, f"{done} deactivated.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    @admin.action(description="Reactivate selected people")
    def reactivate_selected(self, request, queryset) -> None:
        done = sum(user_reactivate(user=user, actor=_actor(request)) for user in self._users_of(queryset))
        self.message_user(request, f"{done} reactivated.", messages.SUCCESS)

    @admin.action(description="Resend the invitation e-mail (people who have not set a password)")
    def resend_invitation(self, request, queryset) -> None:
        users = self._users_of(queryset)
        sent = sum(invitation_resend(user=user) for user in users)
        level = messages.SUCCESS if sent else messages.WARNING
        self.message_user(
            request, f"{sent} invitation(s) queued; {len(users) - sent} skipped (inactive or password set).", level
        )

    # The delete page: it confirms a deactivation, logs a change and deactivates (a person is never deleted here).
    def get_deleted_objects(self, objs, request: HttpRequest) -> tuple[list[str], dict, set, list]:
        users = [self._user_of(obj) for obj in objs]
        lines = [f"{user.username}: deactivated (the account is kept; their sessions end)" for user in users]
        return lines, {}, set(), []

    def log_deletions(self, request: HttpRequest, queryset: QuerySet) -> list[LogEntry]:
        return [self.log_change(request, obj, "Deactivated (delete keeps the row).") for obj in queryset]

    def delete_model(self, request: HttpRequest, obj: CustomUser | ProfileBase) -> None:
        user_deactivate(user=self._user_of(obj), actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for user in self._users_of(queryset):
            user_deactivate(user=user, actor=_actor(request))

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except PersonChangeRefused as exc:
            self.message_user(request, exc.message, messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id]))

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        self.message_user(request, f"“{obj_display}” was deactivated; the account is kept.", messages.SUCCESS)
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))


@admin.register(CustomUser)
class PeopleUserAdmin(PeopleActionsMixin, HODPermissionsMixin, UserAdmin):
    """Users: created, changed, given a password and deactivated through the owners; activity only by actions."""

    form = PersonChangeForm
    change_password_form = PasswordSetForm
    list_display = ("username", "email", "first_name", "last_name", "user_type", "is_active", "date_joined")
    list_filter = ("user_type", "is_active", "email_verified", "date_joined", "deactivated_at")
    search_fields = ("username", "email", "first_name", "last_name")
    ordering = ("-date_joined",)
    readonly_fields = (
        "last_login",
        "date_joined",
        "created_at",
        "updated_at",
        "deactivated_at",
        "is_active",
        "second_factors",
    )
    fieldsets = (
        *(UserAdmin.fieldsets or ()),
        ("Role", {"fields": ("user_type", "email_verified", "created_at", "updated_at", "deactivated_at")}),
        ("Second factors", {"fields": ("second_factors",)}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "user_type", "password1", "password2")}),
    )
    show_full_result_count = False  # no second COUNT(*) over the whole table on every page

    def get_inlines(self, request, obj=None):
        return [] if obj is None else [_INLINES[obj.user_type]]

    @admin.display(description="second factors")
    def second_factors(self, obj: CustomUser) -> str:
        methods = mfa.methods_for(obj) if obj.pk else []
        if not methods:
            return "None (a password alone)"
        url = reverse("admin:users_customuser_mfa_reset", args=[obj.pk], current_app=self.admin_site.name)
        return format_html('{} — <a href="{}">reset them</a>', ", ".join(methods), url)

    def get_urls(self) -> list[URLPattern]:
        reset = path(
            "<path:object_id>/mfa-reset/",
            self.admin_site.admin_view(self.mfa_reset_view),
            name="users_customuser_mfa_reset",
        )
        return [reset, *super().get_urls()]

    # --- Step-up: the sensitive changes first ask "confirm it's you" ----------------------------

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        if request.method == "POST" and person_create_needs_step_up(user_type=request.POST.get("user_type")):
            # back to the add form, filled in again (but for the passwords) once the HOD has confirmed
            initial = {name: request.POST.get(name, "") for name in ("username", "email", "user_type")}
            again = f"{request.path}?{urlencode(initial)}"
            if (confirm := step_up_redirect(request, next_url=again)) is not None:
                return confirm
        return super().add_view(request, form_url, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        user = self.get_object(request, object_id) if request.method == "POST" else None
        if user is not None and email_change_needs_step_up(user=user, email=request.POST.get("email")):
            confirm = step_up_redirect(request)
            if confirm is not None:
                return confirm
        return super().change_view(request, object_id, form_url, extra_context)

    def mfa_reset_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Remove another person's second factors (a lost phone): a confirmation page, then ``mfa.mfa_reset``."""
        if (confirm := step_up_redirect(request)) is not None:
            return confirm
        user = self.get_object(request, object_id)
        if user is None:
            raise Http404("No such person.")
        change_url = reverse("admin:users_customuser_change", args=[user.pk], current_app=self.admin_site.name)
        if request.method == "POST":
            try:
                removed = mfa.mfa_reset(
                    user=user, actor=_actor(request), ip=client_ip(request), user_agent=user_agent(request), via="admin"
                )
            except FactorConflict as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return HttpResponseRedirect(change_url)
            self.log_change(request, user, f"Second factors reset ({', '.join(removed) or 'none'}).")
            self.message_user(
                request,
                f"The second factors of {user.get_username()} are removed and their sessions ended.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Reset second factors",
            "opts": self.opts,
            "person": user,
            "methods": mfa.methods_for(user),
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/users/mfa_reset.html", context)

    def get_readonly_fields(self, request, obj=None):
        # A role is chosen at creation: changing user_type later would strand the old role's profile.
        return (*self.readonly_fields, "user_type") if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: CustomUser, form: forms.ModelForm, change: bool) -> None:
        if change:
            return  # written with the inline profile, in one change, by save_related
        usable = form.cleaned_data.get("set_usable_password", True)
        created = user_create(
            username=form.cleaned_data["username"],
            email=form.cleaned_data.get("email") or "",
            user_type=form.cleaned_data.get("user_type") or UserType.STUDENT,
            password=form.cleaned_data.get("password1") if usable else None,
            actor=_actor(request),
            source="admin",
        )
        for field in CustomUser._meta.concrete_fields:  # the admin goes on with the created row (redirect, log)
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding, obj._state.db = False, created._state.db

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool) -> None:
        form.save_m2m()
        if not change:
            return
        profile_changes: dict[str, Any] = {}
        for formset in formsets:
            for inline_form in formset.forms:
                profile_changes.update(getattr(inline_form, "profile_changes", {}))
            # What formset.save() would have recorded, for the admin's change message (the owner saves instead).
            formset.new_objects, formset.deleted_objects = [], []
            formset.changed_objects = [(f.instance, f.changed_data) for f in formset.forms if f.has_changed()]
        person_change(
            user=form.instance,
            user_changes=getattr(form, "user_changes", {}),
            profile_changes=profile_changes,
            actor=_actor(request),
        )

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        if (confirm := step_up_redirect(request)) is not None:
            return confirm
        token = _password_setter.set((_actor(request), client_ip(request)))
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_setter.reset(token)


@admin.register(UserSession)
class UserSessionAdmin(HODPermissionsMixin, admin.ModelAdmin):
    list_display = ("id", "user", "created_at", "last_used_at", "expires_at", "ip", "ended_at", "end_reason")
    list_filter = ("end_reason",)
    search_fields = ("user__username", "user__email", "ip")
    list_select_related = ("user",)
    readonly_fields = [f.name for f in UserSession._meta.fields]

    def has_add_permission(self, request, *args) -> bool:
        return False


class ProfileAdmin(PeopleActionsMixin, HODPermissionsMixin, admin.ModelAdmin):
    """A role profile: created with its user (never on its own), edited here, its user linked by id."""

    form = ProfileForm
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

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the changelist offers "Deactivate selected" for profiles
        return actions

    def save_model(self, request: HttpRequest, obj: ProfileBase, form: ProfileForm, change: bool) -> None:
        profile_change(user=obj.user, changes=form.profile_changes, actor=_actor(request))


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
