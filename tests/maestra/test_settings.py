import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from maestra import settings as s


def test_env_bool_rejects_garbage(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        s.env_bool("X_FLAG", False)


def test_env_bool_reads_common_spellings(monkeypatch):
    monkeypatch.setenv("X_FLAG", "Yes")
    assert s.env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "0")
    assert s.env_bool("X_FLAG", True) is False


def test_env_int_rejects_garbage(monkeypatch):
    monkeypatch.setenv("X_NUM", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_NUM"):
        s.env_int("X_NUM", 1)


def test_env_list_splits_on_commas(monkeypatch):
    monkeypatch.setenv("X_LIST", "a.example, b.example ,")
    assert s.env_list("X_LIST", []) == ["a.example", "b.example"]


def _import_settings(**env):
    full = {
        k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "DATABASE_URL", "TIME_ZONE")
    }
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import maestra.settings"], env=full, capture_output=True, text=True
    )


def test_production_without_secret_key_fails_loudly():
    result = _import_settings(DEBUG="false", DATABASE_URL="postgres://postgres@127.0.0.1:5432/maestra")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_the_zero_setup_sqlite_database_runs_without_a_secret_key():
    # manage.py on a fresh checkout (migrations, checks) works out of the box.
    assert _import_settings(DEBUG="false").returncode == 0


def test_bad_database_url_fails_loudly():
    result = _import_settings(SECRET_KEY="x", DATABASE_URL="mysql://nobody@nowhere/db")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_bad_time_zone_fails_loudly():
    result = _import_settings(SECRET_KEY="x", TIME_ZONE="Mars/Olympus")
    assert result.returncode != 0
    assert "TIME_ZONE" in result.stderr


def test_redis_url_switches_the_broker_and_the_cache():
    code = (
        "import maestra.settings as s; print('redis' in s.Q_CLUSTER, 'orm' in s.Q_CLUSTER, "
        "getattr(s, 'CACHES', {}).get('default', {}).get('BACKEND', 'locmem').rsplit('.', 1)[-1])"
    )
    full = dict(os.environ, SECRET_KEY="x", REDIS_URL="redis://127.0.0.1:6379/0")
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)
    assert out.stdout.split() == ["True", "False", "RedisCache"]
    full.pop("REDIS_URL")
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "True", "locmem"]
