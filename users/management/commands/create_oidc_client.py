"""Register an OpenID Connect client: python manage.py create_oidc_client NAME --redirect-uri URI [...]."""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from users.services.oidc.clients import oidc_client_create


class Command(BaseCommand):
    help = "Register an OpenID Connect client (authorization code flow with PKCE). The secret is shown once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--redirect-uri", action="append", required=True, dest="redirect_uris")
        parser.add_argument("--public", action="store_true", help="A public client (no secret; PKCE required).")
        parser.add_argument("--first-party", action="store_true", help="Skip the consent page.")
        parser.add_argument("--backchannel-logout-uri", default="")
        parser.add_argument("--post-logout-redirect-uri", action="append", default=[], dest="post_logout_uris")
        parser.add_argument("--json", action="store_true", help='Print {"client_id", "client_secret"} only.')

    def handle(self, *args, **options) -> None:
        try:
            created = oidc_client_create(
                name=options["name"],
                redirect_uris=options["redirect_uris"],
                public=options["public"],
                first_party=options["first_party"],
                backchannel_logout_uri=options["backchannel_logout_uri"],
                post_logout_redirect_uris=options["post_logout_uris"],
            )
        except ValidationError as exc:
            messages = exc.message_dict if hasattr(exc, "error_dict") else {"error": exc.messages}
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in messages.items())) from exc
        if options["json"]:
            self.stdout.write(json.dumps({"client_id": created.client_id, "client_secret": created.client_secret}))
            return
        self.stdout.write(f"client_id: {created.client_id}")
        if created.client_secret:
            self.stdout.write(f"client_secret (shown once, store it now): {created.client_secret}")
        else:
            self.stdout.write("public client: no secret; it must use PKCE (S256)")
