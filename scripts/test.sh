#!/usr/bin/env bash
# Set up and run the whole test suite. SQLite unless DATABASE_URL is set
# (CI: postgres://postgres@127.0.0.1:5432/maestra). Extra args go to pytest.
source "$(dirname "$0")/_venv.sh"
export SECRET_KEY=${SECRET_KEY:-test-only-secret-key}
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
