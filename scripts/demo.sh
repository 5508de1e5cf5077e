#!/usr/bin/env bash
# Set up and run Maestra flows with demo data: admin + API (runserver) and the
# worker (qcluster), on SQLite. Ctrl-C (or a kill of this script) stops both.
source "$(dirname "$0")/_venv.sh" runtime
# The demo is the zero-setup mode: SQLite in a file and django-q2's ORM broker,
# whatever this shell exports for a real deployment.
unset REDIS_URL
export DATABASE_URL="sqlite:///$(realpath -m "${MAESTRA_DEMO_DB:-db.sqlite3}")"
export DEBUG=${DEBUG:-true}
export Q_WORKERS=${Q_WORKERS:-1}
PORT=${PORT:-8000}
.venv/bin/python manage.py migrate --no-input -v 0
.venv/bin/python manage.py load_demo

# Each child in its own process group, so stopping it also stops what it
# started (qcluster's worker processes).
children=()
start() {
  if command -v setsid >/dev/null 2>&1; then setsid "$@" & else "$@" & fi
  children+=($!)
}
stop() {
  trap - EXIT INT TERM
  # The leaders first (qcluster stops its own workers on SIGTERM), then
  # whatever of their groups is left after a grace period.
  for pid in "${children[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 40); do
    alive=0
    for pid in "${children[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.25
  done
  for pid in "${children[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start .venv/bin/python manage.py qcluster
start .venv/bin/python manage.py runserver --noreload "127.0.0.1:$PORT"
echo
echo "==> Maestra flows: http://127.0.0.1:$PORT/admin/  (login admin / admin)"
echo "==> worker (qcluster) pid ${children[0]}: an event or a customer change is handled at once (docs/realtime.md)"
# Returns when either child ends (then the other is stopped too) or on a signal.
wait -n
