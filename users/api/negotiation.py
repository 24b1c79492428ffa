"""Content negotiation: DRF's, answering the usual request without parsing its Accept header."""

from rest_framework.negotiation import DefaultContentNegotiation


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's ``DefaultContentNegotiation``; a request without a query string or format suffix that accepts
    anything (no ``Accept`` header, or ``*/*``) or exactly the first renderer's media type gets that renderer at
    once.

    That is DRF's own answer for those requests (tested against it); parsing the header into media types was a
    visible share of a cached ``user/{id}/`` lookup. Anything else is negotiated by DRF, which also reads the
    query string (``?format=``) there, so a malformed one is refused at the same point as before.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        if renderers and not format_suffix and not request.META.get("QUERY_STRING"):
            first = renderers[0]
            if request.META.get("HTTP_ACCEPT", "*/*") in ("*/*", first.media_type):
                return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
