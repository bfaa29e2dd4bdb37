#!/usr/bin/env bash
# The servers' own raw rates, to show how close conveyor's drain rate gets to the limit:
# redis-benchmark (SET and INCR, one client, no pipelining: one round trip per operation,
# as a worker makes) and pgbench's simple-update script (one client), both against the
# benchmark's own Redis database / PostgreSQL database, cleaned afterwards.
set -euo pipefail
redis_db="${BENCH_REDIS_DB:-14}"
pg="${BENCH_PG_URL:-postgresql://postgres@127.0.0.1:5432/bench}"
seconds="${BENCH_LIMIT_SECONDS:-10}"
if command -v redis-benchmark >/dev/null; then
    echo "## redis-benchmark (1 client, database $redis_db)"
    redis-benchmark -h 127.0.0.1 -p 6379 --dbnum "$redis_db" -c 1 -n 50000 -q -t set,incr
    redis-cli -h 127.0.0.1 -p 6379 -n "$redis_db" FLUSHDB >/dev/null
fi
if command -v pgbench >/dev/null; then
    echo "## pgbench simple-update (1 client, ${seconds} s, database bench)"
    pgbench -q -i -s 1 "$pg" >/dev/null 2>&1
    pgbench -N -c 1 -T "$seconds" "$pg" 2>/dev/null | grep -E "^tps|latency average"
    pgbench -i -I d "$pg" >/dev/null 2>&1 || true   # drop the pgbench tables
fi
