"""The base of every API view, the JSON 404 for unknown /api/ URLs, and the
schema and docs views."""

from __future__ import annotations

from django.http import JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ParseError
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.views import APIView

from maestra.api.auth import ApiKeyAuthentication, ApiKeyThrottle, HasAccess
from maestra.api.errors import NotFound, error
from maestra.api.pagination import Pagination
from maestra.api.parsers import LimitedJSONParser


class ApiMixin:
    # Key (within its scopes) or staff session (within its permissions: the
    # table in maestra/api/access.py), a per-key throttle, JSON bodies with a size
    # limit; the browsable API for staff (HTML only when asked for), but every
    # error in JSON whatever the Accept header says. (A comment, not a
    # docstring: drf-spectacular would copy a docstring into every operation.)

    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [HasAccess]
    throttle_classes = [ApiKeyThrottle]
    parser_classes = [LimitedJSONParser]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    pagination_class = Pagination
    # No OPTIONS: the OpenAPI schema describes every endpoint, and an
    # undocumented 200 with DRF's metadata is not part of the contract (405).
    metadata_class = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # PostgreSQL text cannot hold U+0000: a NUL in the URL or the query is
        # bad input (400), not a database error (500). Bodies: LimitedJSONParser.
        values = [*map(str, kwargs.values()), *request.query_params.keys()]
        values += [value for _, listed in request.query_params.lists() for value in listed]
        if any("\x00" in value for value in values):
            raise ParseError("The URL contains the NUL character (%00), which text may not hold.")

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class ApiView(ApiMixin, APIView):
    pass


def get_or_404(queryset, what: str, **lookup):
    """The object, or a JSON 404 naming what was looked for."""
    found = queryset.filter(**lookup).first()
    if found is None:
        key, value = next(iter(lookup.items()))
        raise NotFound([error(f"no {what} with {key.replace('__', ' ')} {value!r}")])
    return found


def put_and_patch(
    *, name: str, noun: str, tags: list[str], request, response, replace_note: str = "the slug stays"
):
    """The PUT (replace) and PATCH (some attributes) methods of a resource
    named by its slug, both handled by the view's `_update(request, slug,
    partial=...)`, with their OpenAPI operations `<name>_replace` and
    `<name>_update`. In the class body: `put, patch = put_and_patch(...)`."""

    # No docstrings on the methods: drf-spectacular would copy them into the operations.
    @extend_schema(
        operation_id=f"{name}_replace",
        summary=f"Update a {noun} ({replace_note})",
        request=_replacing(request),
        responses=response,
        tags=tags,
    )
    def put(self, request, slug: str):
        return self._update(request, slug, partial=False)

    @extend_schema(
        operation_id=f"{name}_update",
        summary=f"Update some attributes of a {noun}",
        request=request(partial=True),
        responses=response,
        tags=tags,
    )
    def patch(self, request, slug: str):
        return self._update(request, slug, partial=True)

    return put, patch


def _replacing(request):
    """The PUT body's schema: the create body with `slug` optional. The path
    names the object and `_update` takes the slug from it (a different slug in
    the body is a 400), so `{"name": ...}` alone is a valid replacement; were
    the schema to require the slug, it would document a rule the API does not
    apply (schemathesis: "schema-violating request accepted"). Schema only:
    the view validates with `request` itself. Component `<Resource>Replace`."""
    base = request.__name__.removesuffix("Serializer").removesuffix("Input")

    @extend_schema_serializer(component_name=f"{base}Replace")
    class Replace(request):
        def get_fields(self):
            fields = super().get_fields()
            fields["slug"].required = False
            return fields

    return Replace


@csrf_exempt
def not_found(request, *args, **kwargs):
    """Any /api/ URL that names no endpoint: JSON, never Django's HTML page."""
    message = f"No API endpoint at {request.path}."
    if request.path.endswith("/"):
        try:
            match = resolve(request.path.rstrip("/"))
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            message += f" Did you mean {request.path.rstrip('/')} (without the trailing slash)?"
    return JsonResponse({"errors": [{"field": "", "message": message}]}, status=404)


class SchemaView(SpectacularAPIView):
    pass


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI with its start-up script served from a URL of its own
    (?script), not inline: the Content-Security-Policy allows no inline script."""
