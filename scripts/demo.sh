#!/usr/bin/env bash
# Set up and run Maestra flows with demo data: admin + API (runserver) and the
# worker (qcluster), on SQLite. Ctrl-C stops both.
source "$(dirname "$0")/_venv.sh"
export DEBUG=${DEBUG:-true}
export Q_WORKERS=${Q_WORKERS:-1}
PORT=${PORT:-8000}
.venv/bin/python manage.py migrate --no-input -v 0
.venv/bin/python manage.py load_demo
.venv/bin/python manage.py qcluster &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT INT TERM
echo
echo "==> Maestra flows: http://127.0.0.1:$PORT/admin/  (login admin / admin)"
echo "==> worker (qcluster) pid $worker; run '.venv/bin/python manage.py flows_tick' to do due work at once"
.venv/bin/python manage.py runserver "127.0.0.1:$PORT"
