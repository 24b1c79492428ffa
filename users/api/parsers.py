"""The request edge: body parsers and the text check every query string and form body passes.

One rule for every way text comes in: it is valid UTF-8 (so no lone surrogates, which JSON can smuggle
in as ``\\ud800`` escapes and which nothing downstream can encode: not the renderer echoing a key, not a
Redis key, not PostgreSQL), it holds no NUL (PostgreSQL text cannot), and JSON nests at most
``JSON_MAX_DEPTH`` levels (Python's parser recurses, and a few hundred levels already cost a stack frame
each in every recursive consumer after it). What breaks the rule is a 400 here, before any view,
serializer, throttle or service sees it.

JSON bodies: ``JSONParser``. URL-encoded text (query strings, through ``user_service.middleware``, and
``application/x-www-form-urlencoded`` bodies): ``urlencoded_text_error`` and ``FormParser``. Multipart
uploads keep DRF's parser: Django decodes their field text with replacement characters, never to a lone
surrogate, and the roster importer decodes the uploaded CSV strictly itself.
"""

import json
import math
import re
from collections.abc import Mapping
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError

# A JSON string (escapes included) or one bracket: strings are skipped, so brackets inside them do not count.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
# Where a parsed string may hold a surrogate or a NUL: only an escape can put one there (raw bytes cannot).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")
_BAD_CHARACTER = re.compile("[\ud800-\udfff\x00]")

NOT_UNICODE = "The request contains text that is not valid Unicode (bytes that are not UTF-8, or a lone surrogate)."
HAS_NUL = "The request contains a NUL character."


def json_nesting_exceeds(text: str, limit: int) -> bool:
    """True when arrays and objects in ``text`` nest deeper than ``limit`` (checked before parsing)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def text_error(value: str) -> str | None:
    """Why ``value`` is not acceptable text (a lone surrogate or a NUL), or None."""
    bad = _BAD_CHARACTER.search(value)
    if bad is None:
        return None
    return HAS_NUL if bad.group() == "\x00" else NOT_UNICODE


def _json_strings_error(data: Any) -> str | None:
    """The first ``text_error`` of any key or string value in parsed JSON (already depth-limited)."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            error = text_error(item)
            if error:
                return error
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"Number out of range: {text[:40]}")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def json_loads(raw: bytes, *, encoding: str = "utf-8") -> Any:
    """Parse a JSON body under the edge rules; every refusal is a ``ParseError`` (400)."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ParseError(f"{NOT_UNICODE} First bad byte at position {exc.start}.") from exc
    limit = settings.JSON_MAX_DEPTH
    if json_nesting_exceeds(text, limit):
        raise ParseError(f"JSON nested deeper than {limit} levels.")
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:  # only reachable with a JSON_MAX_DEPTH near the interpreter's own limit
        raise ParseError(f"JSON nested deeper than {limit} levels.") from exc
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from exc
    if _SUSPECT_ESCAPE.search(text):
        error = _json_strings_error(data)
        if error:
            raise ParseError(error)
    return data


def _wsgi_bytes(value: bytes | str) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("iso-8859-1")  # WSGI hands over the raw bytes as Latin-1 text (PEP 3333)
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _bytes_text_error(raw: bytes) -> str | None:
    if b"\x00" in raw:
        return HAS_NUL
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return NOT_UNICODE
    return None


def urlencoded_text_error(raw: bytes | str) -> str | None:
    """Why URL-encoded text (a query string or form body) would not decode to acceptable text, or None.

    Django decodes it leniently (bad bytes become U+FFFD), so a request the client encoded wrongly would
    otherwise be answered as if it had asked for something else.
    """
    raw = _wsgi_bytes(raw)
    if not raw:
        return None
    return _bytes_text_error(unquote_to_bytes(raw.replace(b"+", b" ")))


def _encoding(parser_context: Mapping | None) -> str:
    """The request's charset, as DRF's own parsers read it."""
    return (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser under the edge rules (depth, valid UTF-8, no lone surrogate or NUL, finite numbers)."""

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping | None = None) -> Any:
        return json_loads(stream.read(), encoding=_encoding(parser_context))


class FormParser(parsers.FormParser):
    """DRF's form parser, refusing bodies that do not decode to valid UTF-8 without NUL."""

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping | None = None
    ) -> Any:  # an immutable QueryDict, as DRF's parser returns
        raw = stream.read()
        error = urlencoded_text_error(raw)
        if error:
            raise ParseError(error)
        return QueryDict(raw, encoding=_encoding(parser_context))
