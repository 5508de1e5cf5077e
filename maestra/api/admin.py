"""API keys in the admin: the library's admin (key shown once after saving,
revoking cannot be undone) with the scopes as checkboxes; creating and
revoking go through maestra/api/keys.py, which writes the audit log. The library's own
APIKey admin is removed: keys made there would carry no scopes."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from maestra.api import keys
from maestra.api.models import ApiKey, Scope, all_scopes

if admin.site.is_registered(LibraryAPIKey):
    admin.site.unregister(LibraryAPIKey)


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=all_scopes,
        help_text="What the key may do (docs/api.md lists the endpoints of each scope); "
        "a request outside them is refused with 403.",
        error_messages={"required": "Tick at least one scope."},
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expiry_date", "revoked"]


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    form = ApiKeyForm
    list_display = ("prefix", "name", "scope_list", "created", "expiry_date", "_has_expired", "revoked")

    def save_model(self, request, obj, form, change):
        # The library's save, through the services that write the audit log.
        if change:
            keys.save_key(api_key=obj, user=request.user)
            return
        key = keys.create_key(api_key=obj, user=request.user)
        messages.warning(
            request,
            f"The API key for {obj.name} is: {key}. Please store it somewhere safe: "
            "you will not be able to see it again.",
        )

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes) if isinstance(obj.scopes, list) else ""
