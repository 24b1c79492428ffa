"""Content negotiation: DRF's, answering the usual request without parsing its Accept header."""

from rest_framework.negotiation import DefaultContentNegotiation


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's ``DefaultContentNegotiation``; a request that asks for no format and accepts anything (no ``Accept``
    header, or ``*/*``) or exactly the first renderer's media type gets that renderer at once.

    That is DRF's own answer for those requests (tested against it); parsing the header into media types was a
    visible share of a cached ``user/{id}/`` lookup. Anything else is negotiated by DRF.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        if renderers and not format_suffix and not self._format_asked(request):
            first = renderers[0]
            accept = request.META.get("HTTP_ACCEPT", "*/*")
            if accept in ("*/*", first.media_type):
                return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)

    def _format_asked(self, request) -> bool:
        name = self.settings.URL_FORMAT_OVERRIDE
        return bool(name) and f"{name}=" in request.META.get("QUERY_STRING", "")
