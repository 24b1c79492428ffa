"""`manage.py create_service_account NAME --scopes users:read tokens:introspect`: prints the secret once."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from users.services.service_accounts import KNOWN_SCOPES, service_account_create


class Command(BaseCommand):
    help = "Create a service account for a sibling service; its secret is printed once and stored hashed."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Human name of the service, e.g. 'attendance'.")
        parser.add_argument("--scopes", nargs="*", default=[], help=f"Scopes among {sorted(KNOWN_SCOPES)}.")
        parser.add_argument("--client-id", help="Client id (default: the name, slugified).")

    def handle(self, *args, name, scopes, client_id, **options):
        try:
            account, secret = service_account_create(name=name, scopes=scopes, client_id=client_id)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(f"client_id={account.client_id}")
        self.stdout.write(f"client_secret={secret}")
        self.stdout.write(f"scopes={' '.join(account.scopes) or '(none)'}")
        self.stderr.write("Store the secret now: it is not shown again (only its hash is kept).")
