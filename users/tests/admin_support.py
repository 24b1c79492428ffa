"""Helpers of the admin tests: the change form's values as a browser would post them back."""

from html.parser import HTMLParser


class _FormFields(HTMLParser):
    """The values a browser would submit with the admin's change form (inputs, selects, textareas)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.setdefault(name, []).append(a.get("value", "on" if a.get("type") == "checkbox" else ""))
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] = [self.data[self._textarea][0] + data.lstrip("\n")]


def change_form(client, url: str) -> dict[str, list[str]]:
    parser = _FormFields()
    parser.feed(client.get(url).content.decode())
    return parser.data


def change_form_post(client, url: str, changes: dict[str, str]):
    """Post the admin's change form at ``url`` back as a browser would, with ``changes`` typed into it."""
    data = change_form(client, url)
    data.update({name: [value] for name, value in changes.items()})
    return client.post(url, data)
