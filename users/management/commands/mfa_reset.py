"""`manage.py mfa_reset USERNAME`: an operator removes a person's second factors (the last HOD lost them all)."""

from django.core.management.base import BaseCommand, CommandError

from users.models import CustomUser
from users.services.mfa import mfa_reset


class Command(BaseCommand):
    help = (
        "Remove every second factor of a person and end their sessions, as an HOD's reset does (audited, e-mailed); "
        "for when no other HOD can do it through the API."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="The person's username or e-mail address.")

    def handle(self, *args, username, **options):
        user = (
            CustomUser.objects.filter(username__iexact=username).first()
            or CustomUser.objects.filter(email__iexact=username).first()
        )
        if user is None:
            raise CommandError(f"No user {username!r}.")
        removed = mfa_reset(user=user, actor=None, via="command")
        self.stdout.write(f"Removed from {user.username}: {', '.join(removed) or 'nothing'}; their sessions ended.")
