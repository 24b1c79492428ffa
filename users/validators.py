"""Password validators beyond Django's own."""

from django.core.exceptions import ValidationError


class MaximumLengthValidator:
    """Refuse absurdly long passwords (hashing cost), while allowing well over 128 characters."""

    def __init__(self, max_length: int = 512):
        self.max_length = max_length

    def validate(self, password, user=None):
        if len(password) > self.max_length:
            raise ValidationError(
                f"This password is too long; at most {self.max_length} characters.", code="password_too_long"
            )

    def get_help_text(self) -> str:
        return f"Your password can be at most {self.max_length} characters."
