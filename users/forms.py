"""Form fields shared by the pages that take a passkey: the admin's sign-in pages and the single sign-on pages."""

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

PASSKEY_ANSWER_MAX = 16_384  # an assertion's JSON is a few hundred bytes to a few kilobytes


class PasskeyAnswerField(forms.CharField):
    """The browser's answer of ``navigator.credentials.get()`` as JSON (``credential.toJSON()``), put in a hidden
    field by ``users/static/users/passkey.js``; cleaned to the dict the passkey factor checks."""

    widget = forms.HiddenInput

    def __init__(self) -> None:
        super().__init__(required=False, max_length=PASSKEY_ANSWER_MAX, strip=True)

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return None
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ValidationError("The passkey's answer could not be read; try again.", code="webauthn_malformed")
        return answer
