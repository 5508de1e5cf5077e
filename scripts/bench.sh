#!/usr/bin/env bash
# The benchmark (bench/README.md): sets up the venv, makes sure PostgreSQL
# runs, creates a fresh database (maestra_bench unless BENCH_DATABASE_URL or
# --database-url says otherwise), runs S1/S2/S3 with their baselines, prints
# the table and appends it to bench/RESULTS.md.
#   scripts/bench.sh --quick          # N = 20,000, about a minute or two
#   scripts/bench.sh                  # full sizes: N = 1,000,000
#   scripts/bench.sh --n 200000 --only s1
source "$(dirname "$0")/_venv.sh"
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "==> starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
exec .venv/bin/python bench/run.py "$@"
