"""Page-number pagination with a client-chosen ``page_size`` (at most 100)."""

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    page_size_query_description = (
        "Results per page: a whole number from 1 (default 20, larger than 100 counts as 100); any other value is "
        "ignored, so the default applies."
    )

    def get_schema_operation_parameters(self, view) -> list[dict]:
        """As DRF's, but ``page_size`` is any text: a value that is not a positive whole number is ignored."""
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "string", "example": "20"}
        return parameters
