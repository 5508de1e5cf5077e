"""API keys with scopes. The key itself is djangorestframework-api-key's
(random, shown once, stored hashed, revocable, with an expiry date); this
model adds what each key may do. A key only reaches the endpoints whose
scope it carries (maestra/api/access.py says which endpoint needs which)."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager


class Scope(models.TextChoices):
    EVENTS_WRITE = "events:write", "events:write: send events"
    CUSTOMERS_READ = "customers:read", "customers:read: read customers and their activity"
    CUSTOMERS_WRITE = "customers:write", "customers:write: create and update customers"
    FLOWS_READ = "flows:read", "flows:read: read flows, their documents, versions and statistics"
    FLOWS_WRITE = "flows:write", "flows:write: create, edit, launch, pause and archive flows"
    CONTENT_WRITE = "content:write", "content:write: templates, segments and promo pools"
    PRIVACY = "privacy", "privacy: erase and export a customer's personal data"


def all_scopes() -> list[str]:
    """Every scope: what a key gets unless it is told otherwise."""
    return list(Scope.values)


def parse_scopes(values: Iterable[str]) -> list[str]:
    """Known scopes, deduplicated, in the order of Scope; ValueError naming
    the unknown ones (the command and the model both check with this)."""
    wanted = {value.strip() for value in values if value.strip()}
    unknown = sorted(wanted - set(Scope.values))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; the scopes are {', '.join(Scope.values)}")
    if not wanted:
        raise ValueError(f"a key needs at least one scope of {', '.join(Scope.values)}")
    return [scope for scope in Scope.values if scope in wanted]


class ApiKeyManager(BaseAPIKeyManager):
    pass


class ApiKey(AbstractAPIKey):
    scopes = models.JSONField(
        default=all_scopes,
        help_text="What the key may do; a request outside its scopes is refused with 403.",
    )

    objects = ApiKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def clean(self) -> None:
        super().clean()
        try:
            self.scopes = parse_scopes(self.scopes if isinstance(self.scopes, list) else [])
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValidationError({"scopes": str(exc)}) from None

    def has_scope(self, *scopes: str) -> bool:
        """True if the key carries any of `scopes`."""
        return isinstance(self.scopes, list) and any(scope in self.scopes for scope in scopes)
