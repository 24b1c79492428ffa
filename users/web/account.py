"""The signed-in person's own page."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from users.web.security import page_headers
from users.web.signin import signin_session_get


@page_headers
@require_http_methods(["GET"])
def account(request: HttpRequest) -> HttpResponse:
    session = signin_session_get(request)
    if session is None:
        return HttpResponseRedirect(reverse("web:sign-in"))
    return render(request, "web/account.html", {"site_name": settings.SSO_SITE_NAME, "user": session.user})
