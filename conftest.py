import pytest
from django.db import connection


def pytest_collection_modifyitems(config, items):
    # Decided from settings, before any connection exists.
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL row locks (SKIP LOCKED); CI runs it on PostgreSQL")
        for item in items:
            if "postgres_only" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Admin and API tests create users; PBKDF2's deliberate slowness is for
    # production, not for the test suite.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
