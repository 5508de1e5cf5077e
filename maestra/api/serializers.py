"""Serializer helpers shared by the API modules."""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers

from maestra.api.errors import ApiError, error

# DRF's own query parameter (?format=json picks the renderer).
IGNORED_KEYS = ("format",)


class StrictMixin:
    """Refuse keys the serializer does not know: a misspelt attribute
    ("frist_name") is an error, not silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = [
                key
                for key in data
                if (key not in self.fields or self.fields[key].read_only) and key not in IGNORED_KEYS
            ]
            if unknown:
                raise serializers.ValidationError({str(key): ["unknown field"] for key in unknown})
        return super().to_internal_value(data)


def require_object(data, *, what: str = "The body") -> dict:
    if not isinstance(data, dict):
        raise ApiError([error(f"{what} must be a JSON object.", field="body")])
    return data


class PageSerializer(serializers.Serializer):
    """Documentation only: the envelope of every paginated list."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
