"""One pagination for every list: ?page=N&page_size=M (at most 500). A page
or page size that is not a positive integer is bad input (400, naming the
parameter), not silently the default; a page past the end is a 404."""

from rest_framework.pagination import PageNumberPagination

from maestra.api.errors import ApiError, error


def _positive_int(value: str, name: str) -> int:
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ApiError([error("must be a positive integer", field=name)])
    return int(text)


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request) -> int:
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        return min(_positive_int(value, self.page_size_query_param), self.max_page_size)

    def get_page_number(self, request, paginator):
        value = request.query_params.get(self.page_query_param, "1")
        if value in self.last_page_strings:
            return paginator.num_pages
        return _positive_int(value, self.page_query_param)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"] = {**parameter["schema"], "minimum": 1}
        return parameters
