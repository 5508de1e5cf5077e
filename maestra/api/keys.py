"""Creating and revoking API keys, with an audit entry each (who made or
revoked which key: its name, prefix and scopes, never the key). The
create_api_key command and the API-key admin both go through here."""

from __future__ import annotations

from django.db import transaction

from maestra.api.models import ApiKey
from maestra.audit import log as audit


def _log(action: str, api_key: ApiKey, *, user, actor: str) -> None:
    # A key's primary key is text: it is named in the entry, not linked.
    audit.log(
        action,
        user=user,
        actor=actor,
        subject_repr=f"{api_key.name} ({api_key.prefix})",
        data={"prefix": api_key.prefix, "name": api_key.name, "scopes": list(api_key.scopes or [])},
    )


def create_key(*, api_key: ApiKey, user=None, actor: str = "") -> str:
    """Save the new (unsaved) `api_key` with a fresh secret and return the
    secret: it is shown once and only its hash is stored."""
    with transaction.atomic():
        key = ApiKey.objects.assign_key(api_key)
        api_key.save()
        _log("api_key.created", api_key, user=user, actor=actor)
    return key


def save_key(*, api_key: ApiKey, user=None, actor: str = "") -> None:
    """Save changes to an existing key (its name, scopes, expiry); revoking
    it, which cannot be undone, is logged."""
    with transaction.atomic():
        was_revoked = ApiKey.objects.filter(pk=api_key.pk, revoked=True).exists()
        api_key.save()
        if api_key.revoked and not was_revoked:
            _log("api_key.revoked", api_key, user=user, actor=actor)


def revoke_key(*, api_key: ApiKey, user=None, actor: str = "") -> None:
    api_key.revoked = True
    save_key(api_key=api_key, user=user, actor=actor)
