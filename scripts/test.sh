#!/usr/bin/env bash
# Set up and run the whole test suite: the import contracts, the module-size
# report, then pytest. SQLite unless DATABASE_URL is set
# (CI: postgres://postgres@127.0.0.1:5432/maestra). Extra args go to pytest.
source "$(dirname "$0")/_venv.sh"
# The browser tests drive Debian's Chromium; install it when we can (root with
# apt), otherwise they skip and say why.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing Chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "==> could not install Chromium: browser tests will be skipped"
fi
export SECRET_KEY=${SECRET_KEY:-test-only-secret-key}
# The architecture first: the import contracts (.importlinter) must hold, and
# no product module may be over 600 lines (migrations aside).
echo "==> import contracts"
.venv/bin/lint-imports --no-cache --no-logo
echo "==> module sizes"
.venv/bin/python scripts/check_module_size.py
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
