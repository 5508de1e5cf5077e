"""Serializer helpers shared by the API modules."""

from __future__ import annotations

from collections.abc import Mapping

from django.http import QueryDict
from rest_framework import serializers

from maestra.api.errors import ApiError, error

# DRF's own query parameter (?format=json picks the renderer).
IGNORED_KEYS = ("format",)


# The JSON type a body must send for a field, by DRF field class (first match
# wins: ChoiceField is not a CharField, and BooleanField no IntegerField).
_JSON_TYPES: tuple[tuple[type, tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.CharField, (str,), "a string"),
    (serializers.ChoiceField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "a string"),
    (serializers.DictField, (dict,), "an object"),
    (serializers.ListField, (list,), "a list"),
)


class StrictMixin:
    """Refuse keys the serializer does not know: a misspelt attribute
    ("frist_name") is an error, not silently dropped. In a JSON body, refuse
    values of the wrong JSON type too: DRF would turn 0 into "0" and "5" into
    5, and the OpenAPI schema promises a string or an integer (query
    parameters are all text and keep DRF's conversions)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = [
                key
                for key in data
                if (key not in self.fields or self.fields[key].read_only) and key not in IGNORED_KEYS
            ]
            if unknown:
                raise serializers.ValidationError({str(key): ["unknown field"] for key in unknown})
            if not isinstance(data, QueryDict):
                wrong = {
                    key: [f"must be {expected}"]
                    for key, value in data.items()
                    if (expected := _type_problem(self.fields[key], value)) is not None
                }
                if wrong:
                    raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)


def _type_problem(field: serializers.Field, value) -> str | None:
    """What `value` should have been for `field`, or None if it fits."""
    if value is None or isinstance(field, serializers.JSONField):
        return None  # allow_null decides; a JSON field takes any JSON value
    for field_class, types, expected in _JSON_TYPES:
        if isinstance(field, field_class):
            fits = isinstance(value, types) and not (bool not in types and isinstance(value, bool))
            return None if fits else expected
    return None


def require_object(data, *, what: str = "The body") -> dict:
    if not isinstance(data, dict):
        raise ApiError([error(f"{what} must be a JSON object.", field="body")])
    return data
