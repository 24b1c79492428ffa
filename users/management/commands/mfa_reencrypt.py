"""`manage.py mfa_reencrypt`: every stored TOTP secret encrypted again under the first of MFA_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand

from users.services.mfa import totp_secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Encrypt every stored TOTP secret again with the first key of MFA_ENCRYPTION_KEYS (key rotation: put the "
        "new key first, run this, then remove the old key)."
    )

    def handle(self, *args, **options):
        count = totp_secrets_reencrypt()
        self.stdout.write(f"{count} TOTP secret(s) encrypted with the current key.")
