"""The Django admin as HODs use it: only active HOD accounts may enter, through the admin's sign-in pages
(``users.admin_auth``: the password, then the second factor or its enrolment, by the one owner of logging in)."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path

from users.admin_auth import views as auth_views
from users.admin_auth.forms import HODLoginForm, hod_may_enter

__all__ = ["HODAdminSite", "HODLoginForm", "hod_may_enter"]


class HODAdminSite(admin.AdminSite):
    site_header = "User Management Service"
    site_title = "User Management"
    login_form = HODLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        return hod_may_enter(request.user)

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """The password page; a login that needs a second step goes on to it (``users.admin_auth``)."""
        return auth_views.login_page(self, request, extra_context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        own: list[URLResolver | URLPattern] = [
            path("login/second-step/", lambda request: auth_views.second_step(request, self), name="login_second_step"),
            path(
                "login/second-step/passkey/",
                lambda request: auth_views.second_step_passkey_options(request, self),
                name="login_second_step_passkey",
            ),
            path("login/enrol/", lambda request: auth_views.enrol(request, self), name="login_enrol"),
            path(
                "reauthenticate/",
                self.admin_view(lambda request: auth_views.reauthenticate_page(request, self)),
                name="reauthenticate",
            ),
            path(
                "reauthenticate/passkey/",
                self.admin_view(lambda request: auth_views.reauthenticate_passkey_options(request, self)),
                name="reauthenticate_passkey",
            ),
        ]
        return own + super().get_urls()
