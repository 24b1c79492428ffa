"""The relying party's pages: mozilla-django-oidc's sign-in and callback, and who is signed in."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path


def whoami(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"signed_in": False}, status=401)
    return JsonResponse({"signed_in": True, "email": request.user.email})


def failed(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"signed_in": False, "failed": True}, status=403)


urlpatterns = [
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("whoami/", whoami),
    path("failed/", failed),
]
