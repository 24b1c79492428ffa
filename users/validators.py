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


_SEQUENCES = ("0123456789" * 3, "abcdefghijklmnopqrstuvwxyz" * 2, "qwertyuiopasdfghjklzxcvbnm" * 2)


class SequenceOrRepetitionValidator:
    """Refuse passwords made of a run or a repetition (NIST SP 800-63B 5.1.1.2), not by composition rules.

    ``12345678901234``, ``abcdefghijklm``, ``qwertyuiopas``, ``aaaaaaaaaaaa`` or ``abababababab`` are refused;
    nothing is demanded about digits, cases or symbols.
    """

    def validate(self, password, user=None):
        lowered = password.lower()
        in_sequence = any(lowered in seq or lowered in seq[::-1] for seq in _SEQUENCES)
        if in_sequence or len(set(lowered)) <= 2:
            raise ValidationError(
                "This password is a sequence or a repetition of characters; choose something less predictable.",
                code="password_sequence",
            )

    def get_help_text(self) -> str:
        return "Your password can't be a run of characters (1234…, abcd…, qwer…) or one or two characters repeated."
