"""OpenAPI details drf-spectacular cannot infer: the API key security scheme,
the error responses every operation can give, the Errors component, and the
plumbing for examples. What belongs to an app (the flow document, the rule
language, each body's example) is added by that app's own postprocessing
hook (customers/api_schema.py, channels/api_schema.py, flows/api/schema.py,
listed in settings.SPECTACULAR_SETTINGS), so the kernel imports no app."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from maestra.api.access import access_for, endpoint_name

ERRORS_REF = {"$ref": "#/components/schemas/Errors"}

_ERROR_DESCRIPTIONS = {
    "400": "Bad input: every problem is listed.",
    "401": "No API key, or an invalid, revoked or expired one.",
    "403": "The API key lacks the scope this operation needs, or the admin user lacks its permissions "
    "(see x-scopes and x-permissions).",
    "404": "No such object (or no such page of a list).",
    "405": "Method not allowed on this URL.",
    "406": "The Accept header asks for a format the API does not produce.",
    "413": "The body is larger than the limit (API_MAX_BODY_BYTES).",
    "415": "The body is not application/json.",
    "429": "Too many requests for this key; see Retry-After.",
}
_BODY_METHODS = ("POST", "PUT", "PATCH")


def _errors_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERRORS_REF}}}


class MaestraAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        rule = access_for(endpoint_name(self.view), method)
        if operation is not None and rule is not None:
            # Each operation says what it needs (maestra/api/access.py): the
            # scopes as an extension, since OpenAPI 3.0 allows scopes in a
            # security requirement only for OAuth2.
            operation["x-scopes"] = list(rule.scopes)
            operation["x-permissions"] = list(rule.perms)
            access = (
                f"**Access:** an API key with the scope {' or '.join(f'`{s}`' for s in rule.scopes)}; "
                f"an admin session with the permission{'s' if len(rule.perms) > 1 else ''} "
                f"{', '.join(f'`{p}`' for p in rule.perms)}."
            )
            operation["description"] = f"{operation.get('description', '')}\n\n{access}".strip()
        return operation

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["400", "401", "403", "404", "405", "406", "429"]
        if self.method in _BODY_METHODS:
            codes += ["413", "415"]
        for code in codes:
            responses.setdefault(code, _errors_response(_ERROR_DESCRIPTIONS[code]))
        return responses


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "maestra.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'The header value is "Api-Key <key>" (create a key with `manage.py create_api_key NAME` '
            "or in the admin).",
        }


_ERRORS = {
    "type": "object",
    "required": ["errors"],
    "example": {
        "errors": [
            {"index": 3, "field": "occurred_at", "message": "has no UTC offset"},
        ]
    },
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "index": {"type": "integer", "description": "the item of a batch"},
                    "node": {"type": "string", "nullable": True, "description": "the flow node's key"},
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        }
    },
}


def add_components(result, generator, request, public):
    """drf-spectacular postprocessing hook: the error contract's component."""
    add_component(result, "Errors", _ERRORS)
    return result


def add_component(result: dict, name: str, schema: dict) -> None:
    """A hand-written component (an app's hook adds its own with this)."""
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault(name, schema)


def apply_examples(result: dict, examples: dict[str, dict]) -> dict:
    """Each example onto its component (one per component, so every
    operation shows a realistic body in the docs), and paginated lists built
    from their items' examples. Each app's hook calls this with its own."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, example in examples.items():
        if name in schemas:
            schemas[name]["example"] = example
    for name, schema in schemas.items():
        item = name.removeprefix("Paginated").removesuffix("List")
        if name.startswith("Paginated") and item in examples:
            schema["example"] = {"count": 1, "next": None, "previous": None, "results": [examples[item]]}
    return result
