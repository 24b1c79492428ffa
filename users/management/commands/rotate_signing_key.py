"""`manage.py rotate_signing_key`: start signing with a new key while the old one still verifies."""

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from users.tokens import generate_private_key_pem, key_ring, public_jwk


class Command(BaseCommand):
    help = (
        "Write a new RS256 signing key and the current public key, and print how to deploy them. "
        "In the embedded mode the generated key is rotated in place."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", help="Where to write the new private key (PEM, mode 0600).")
        parser.add_argument("--previous-out", help="Where to write the current public key (PEM).")

    def handle(self, *args, out, previous_out, **options):
        current = key_ring().private_key.public_key()
        current_pem = current.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        configured = settings.JWT_PRIVATE_KEY or settings.JWT_PRIVATE_KEY_FILE
        var = Path(settings.VAR_DIR)
        if not configured:
            out = out or str(settings.JWT_GENERATED_KEY_FILE)
            previous_out = previous_out or str(var / "jwt_previous_keys" / f"{public_jwk(current)['kid']}.pem")
        elif not (out and previous_out):
            raise CommandError("With a configured key, give --out NEW_KEY.pem and --previous-out OLD_PUBLIC.pem.")
        Path(previous_out).parent.mkdir(parents=True, exist_ok=True)
        Path(previous_out).write_bytes(current_pem)
        new_key = Path(out)
        tmp = new_key.with_suffix(".tmp")
        tmp.write_bytes(generate_private_key_pem())
        tmp.chmod(0o600)
        tmp.replace(new_key)
        self.stdout.write(f"new signing key: {new_key}")
        self.stdout.write(f"previous public key (kid {public_jwk(current)['kid']}): {previous_out}")
        if configured:
            self.stdout.write(
                "Deploy with JWT_PRIVATE_KEY_FILE=<new key> and add the previous public key to "
                "JWT_PREVIOUS_PUBLIC_KEY_FILES; keep it there for at least the refresh-token lifetime."
            )
        else:
            self.stdout.write("Embedded mode: restart the service; the previous key stays in the JWKS.")
