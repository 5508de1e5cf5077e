"""Who may call the REST API: integrations with an API key (within its
scopes), staff with their admin session (within their model permissions, the
browsable API). Keys come from djangorestframework-api-key: stored hashed,
shown once, revoked in the admin; maestra.api.models.ApiKey adds the scopes.
What each endpoint needs is the table in maestra/api/access.py."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework_api_key.permissions import KeyParser

from maestra.api.access import access_for, endpoint_name
from maestra.api.models import ApiKey

KEYWORD = KeyParser.keyword  # "Api-Key"


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Api-Key <key>`. A request without that header is left
    to the next authentication class (the staff session); a wrong, revoked or
    expired key is refused with 401 at once, never treated as anonymous."""

    parser = KeyParser()

    def authenticate(self, request):
        key = self.parser.get(request)
        if key is None:
            return None
        key = key.strip()
        try:
            api_key = ApiKey.objects.get_from_key(key) if key else None
        except ApiKey.DoesNotExist:
            api_key = None
        if api_key is None or api_key.has_expired:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        return AnonymousUser(), api_key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when no credentials were sent.
        return KEYWORD


class HasApiKeyOrStaff(BasePermission):
    """A valid API key (checked by ApiKeyAuthentication), or a staff user
    logged into the admin. Alone it guards the schema and docs pages when
    they are not public; the endpoints use HasAccess."""

    message = "An API key is required: send the header 'Authorization: Api-Key <key>'."

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiKey):
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class HasAccess(HasApiKeyOrStaff):
    """The endpoint's rule in maestra.api.access.ACCESS: a key needs one of
    its scopes, a staff session all of its model permissions. A method the
    view does not have is let through to DRF's 405; a method the table does
    not list is refused."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        method = request.method.lower()
        if method == "options" or not hasattr(view, method):
            return True  # the view answers 405 (no OPTIONS: see ApiMixin.metadata_class)
        rule = access_for(endpoint_name(view), request.method)
        if rule is None:
            self.message = "This endpoint is open to nobody (it has no access rule)."
            return False
        if self._allows(request, rule):
            return True
        if isinstance(request.auth, ApiKey):
            self.message = f"This API key lacks the scope {' or '.join(rule.scopes)} needed here."
        else:
            missing = [perm for perm in rule.perms if not request.user.has_perm(perm)]
            self.message = f"Your user lacks the permission {', '.join(missing)} needed here."
        return False

    @staticmethod
    def _allows(request, rule) -> bool:
        if isinstance(request.auth, ApiKey):
            return request.auth.has_scope(*rule.scopes)
        return request.user.has_perms(rule.perms)


class ApiKeyThrottle(SimpleRateThrottle):
    """One budget per API key (its public prefix), or per staff user; the rate
    is settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_key"]
    (env API_THROTTLE_RATE, e.g. "1200/min"; empty = unlimited)."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        # Read at request time (the base class binds the rates at import), so
        # the settings, and override_settings in tests, always apply.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.prefix}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"anon:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
