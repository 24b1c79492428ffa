"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the end-session endpoint.

The person confirms (a CSRF-checked form), the login session ends through ``users.services.auth`` (so every token
of its ``sid`` stops working and back-channel logout follows), and the browser goes back to the client's
``post_logout_redirect_uri`` only when that exact URI is registered for the client named by ``client_id`` or the
``id_token_hint``; anything else ends on this service's signed-out page (no open redirect).
"""

from urllib.parse import urlencode, urlparse, urlunparse

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.models import Application

from users import tokens
from users.http import client_ip
from users.services.auth import user_logout
from users.web.security import page_headers
from users.web.signin import signin_cookie_clear, signin_session_get

PARAMETERS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")


def _hint_audience(id_token_hint: str) -> str | None:
    """The client an id_token this service signed was issued to (an expired one is still a good hint)."""
    claims = tokens.id_token_hint_decode(id_token_hint)
    if claims is None:
        return None
    audience = claims.get("aud")
    if isinstance(audience, list):
        audience = audience[0] if len(audience) == 1 else None
    return audience if isinstance(audience, str) else None


def _return_uri(params: dict[str, str]) -> tuple[str | None, Application | None]:
    """The registered post-logout URI to return to (with ``state``), or None."""
    uri = params.get("post_logout_redirect_uri", "")
    client_id = params.get("client_id", "")
    hinted = _hint_audience(params["id_token_hint"]) if params.get("id_token_hint") else None
    if client_id and hinted and client_id != hinted:
        return None, None
    application = Application.objects.filter(client_id=client_id or hinted or "").first()
    if not uri or application is None or uri not in application.post_logout_redirect_uris.split():
        return None, application
    if state := params.get("state"):
        parts = urlparse(uri)
        query = f"{parts.query}&" if parts.query else ""
        uri = urlunparse(parts._replace(query=query + urlencode({"state": state})))
    return uri, application


@page_headers
@require_http_methods(["GET", "POST"])
def end_session(request: HttpRequest) -> HttpResponse:
    source = request.POST if request.method == "POST" else request.GET
    params = {name: source.get(name, "")[:4096] for name in PARAMETERS}
    session = signin_session_get(request)
    context = {"site_name": settings.SSO_SITE_NAME}
    if session is not None and request.method == "GET":
        hidden = [(name, value) for name, value in params.items() if value]
        return render(request, "web/sign_out.html", {**context, "params": hidden, "user": session.user})
    if session is not None:
        user_logout(user=session.user, session_id=str(session.pk), ip=client_ip(request))
    uri, application = _return_uri(params)
    if uri is not None and application is not None:
        response: HttpResponse = OAuth2ResponseRedirect(uri, application.get_allowed_schemes())
    else:
        response = render(request, "web/signed_out.html", context)
    signin_cookie_clear(response)
    return response
