#!/usr/bin/env bash
# Create benchmarks/.venv (peers + this checkout of conveyor) once, make the benchmark's own
# databases, and run the harness. All arguments go to harness.py (see its --help).
#   benchmarks/run.sh --stores sqlite,redis,postgres,mysql --runs 3 --jobs 10000
# Uses Redis database 14 (BENCH_REDIS_URL), PostgreSQL database "bench" (BENCH_PG_URL) and
# MariaDB/MySQL database "bench" (BENCH_MYSQL_URL); nothing else is touched.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || [ "$here/requirements.txt" -nt "$venv/.installed" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$here/requirements.txt"
    "$venv/bin/pip" install -q -e "$root[postgres,redis,mysql,fast]"
    touch "$venv/.installed"
fi
pg="${BENCH_PG_URL:-postgresql://postgres@127.0.0.1:5432/bench}"
if command -v psql >/dev/null && [[ "$*" != *"--stores"* || "$*" == *postgres* ]]; then
    admin="${pg%/*}/postgres"
    psql "$admin" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'bench'" | grep -q 1 \
        || psql "$admin" -qc "CREATE DATABASE bench"
fi
if command -v mysql >/dev/null && [[ "$*" != *"--stores"* || "$*" == *mysql* ]]; then
    mysql -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS bench" || true
fi
mkdir -p "$here/.work" "$here/results"
cd "$here"
exec "$venv/bin/python" "$here/harness.py" "$@"
