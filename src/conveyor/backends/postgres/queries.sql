-- The PostgreSQL store's statements. "-- name: x" starts one; {jobs}, {failed}, … are the
-- schema-qualified, prefixed table names; {claim}, {complete}, {released} and {moved} are
-- the entries of those names (CTEs shared by several statements, statements.py). Every
-- value is a bound parameter.

-- name: insert
-- one statement for any number of jobs (all or none); the NOTIFY goes out with the
-- inserting transaction's commit, once per queue (the caller's own transaction included).
-- The arrays travel in binary (%b): the text form escapes every quote of every JSON
-- payload, which halved the bulk rate.
-- set_config(…, true) makes this transaction's commit wait for the WAL flush at the
-- server's configured level (NULL: leave the caller's transaction as it is)
WITH ins AS (
    INSERT INTO {jobs} (id, queue, name, payload, max_tries, available_at, created_at, batch_id)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::int[],
                         %b::float8[], %b::float8[], %b::text[])
    WHERE (SELECT set_config('synchronous_commit',
                             COALESCE(%s, current_setting('synchronous_commit')), true))
          IS NOT NULL
    RETURNING queue
)
SELECT pg_notify(%s, q.queue) FROM (SELECT DISTINCT queue FROM ins) q;

-- name: insert_one
-- the same for one job (a dispatch), its values as plain parameters: dumping eight
-- one-element arrays costs the client more than the whole statement costs the server
WITH ins AS (
    INSERT INTO {jobs} (id, queue, name, payload, max_tries, available_at, created_at, batch_id)
    SELECT %s::text, %s::text, %s::text, %s::text, %s::int, %s::float8, %s::float8, %s::text
    WHERE (SELECT set_config('synchronous_commit',
                             COALESCE(%s, current_setting('synchronous_commit')), true))
          IS NOT NULL
    RETURNING queue
)
SELECT pg_notify(%s, ins.queue) FROM ins;

-- name: reserve_branch
-- one queue's share of a claim: the partial index gives rows in order, locked ones skipped
SELECT * FROM (
    SELECT id, {rank} AS rank FROM {jobs}
    WHERE queue = %s AND reserved_at IS NULL AND available_at <= %s
      AND NOT EXISTS (SELECT 1 FROM {queues} WHERE queue = %s AND paused)
    ORDER BY available_at, id LIMIT %s FOR UPDATE SKIP LOCKED
) b{rank};

-- name: claim
-- a claim's CTEs (reserve, ack_reserve). MATERIALIZED keeps the fence: the planner may not
-- fold the CTE into the UPDATE and lock (or update) more rows than the LIMIT; UNION ALL
-- runs the queues in order and stops as soon as the limit is reached
c AS MATERIALIZED ({branches} LIMIT %s),
claimed AS (
    UPDATE {jobs} j SET reserved_at = %s, attempts = j.attempts + 1, token = %s, worker = %s,
        lease_expires_at = %s
    FROM c WHERE j.id = c.id
    RETURNING j.id, j.queue, j.name, j.payload, j.attempts, j.max_tries, j.available_at,
        j.created_at, j.batch_id, c.rank
)

-- name: reserve
WITH {claim}
SELECT * FROM claimed;

-- name: complete
-- (arrays in binary, %b, here and below: the text form costs the client a regex pass)
DELETE FROM {jobs} j USING unnest(%b::text[], %b::text[]) AS a(id, token)
WHERE j.id = a.id AND j.token = a.token;

-- name: released
-- a CTE (release, ack_reserve): the jobs put back, with their queues and due times
back AS (
    UPDATE {jobs} j SET reserved_at = NULL, token = NULL, worker = NULL,
        lease_expires_at = NULL, available_at = a.at
    FROM unnest(%b::text[], %b::text[], %b::float8[]) AS a(id, token, at)
    WHERE j.id = a.id AND j.token = a.token
    RETURNING j.queue, a.at
)

-- name: release
-- one NOTIFY per queue given back a job due by the second parameter (now), so an idle
-- worker retries it at once rather than at its next poll
WITH {released}
SELECT 'released', count(*)::text FROM back
UNION ALL SELECT 'notified', pg_notify(%s, q.queue)::text
FROM (SELECT DISTINCT queue FROM back WHERE at <= %s) q;

-- name: moved
-- CTEs (fail, ack_reserve): failed jobs deleted and written to the failed store together.
-- set_config(…, true) makes the transaction's commit durable, as for inserts
gone AS (
    DELETE FROM {jobs} j
    USING unnest(%b::text[], %b::text[], %b::text[], %b::float8[]) AS a(id, token, error, at)
    WHERE j.id = a.id AND j.token = a.token
      AND (SELECT set_config('synchronous_commit',
                             COALESCE(%s, current_setting('synchronous_commit')), true))
          IS NOT NULL
    RETURNING j.id, j.queue, j.name, j.payload, j.attempts, j.max_tries, j.batch_id,
        a.error, a.at
), moved AS (
    INSERT INTO {failed} (uuid, connection, queue, name, payload, exception, failed_at,
                          attempts, max_tries, batch_id)
    SELECT id, %s, queue, name, payload, error, at, attempts, max_tries, batch_id FROM gone
    ON CONFLICT (uuid) DO UPDATE SET connection = EXCLUDED.connection, queue = EXCLUDED.queue,
        name = EXCLUDED.name, payload = EXCLUDED.payload, exception = EXCLUDED.exception,
        failed_at = EXCLUDED.failed_at, attempts = EXCLUDED.attempts,
        max_tries = EXCLUDED.max_tries, batch_id = EXCLUDED.batch_id
    RETURNING 1
)

-- name: fail
WITH {moved}
SELECT count(*) FROM moved;

-- name: ack_reserve
-- the worker's round in one statement, so one round trip and one commit: its finished
-- attempts' acks, each fenced by its token as above, then its next claim. Every CTE sees
-- the statement's snapshot, so the claim cannot take a job released here and no row is
-- changed twice; the NOTIFY (one per queue) has an idle worker, or this one, fetch it.
-- Rows with a NULL id are those NOTIFYs.
WITH done AS ({complete}), {released}, {moved}, {claim}
SELECT * FROM claimed
UNION ALL SELECT NULL, pg_notify(%s, q.queue)::text, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL
FROM (SELECT DISTINCT queue FROM back WHERE at <= %s) q;

-- name: complete_reserve
-- the usual round (completes only, nothing released or failed): ack_reserve without its
-- empty release, fail and NOTIFY parts, which cost the server ~0.1 ms a round even empty
WITH done AS ({complete}), {claim}
SELECT * FROM claimed;

-- name: extend
UPDATE {jobs} j SET lease_expires_at = %s
FROM unnest(%b::text[], %b::text[]) AS a(id, token)
WHERE j.id = a.id AND j.token = a.token
RETURNING j.id;

-- name: recover
-- bounded, and run by one process at a time: whoever does not get the transaction-scoped
-- advisory lock finds nothing to do (another process is recovering right now)
WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(%s) AS got),
expired AS MATERIALIZED (
    SELECT id, attempts, COALESCE(max_tries, %s) AS tries, worker, lease_expires_at
    FROM {jobs}
    WHERE (SELECT got FROM lock) AND reserved_at IS NOT NULL AND lease_expires_at < %s
    ORDER BY lease_expires_at LIMIT %s FOR UPDATE SKIP LOCKED
), lost AS (
    DELETE FROM {jobs} j USING expired e WHERE j.id = e.id AND e.attempts >= e.tries
    RETURNING j.id, j.queue, j.name, j.payload, j.attempts, j.max_tries, j.batch_id,
        e.tries, e.worker, e.lease_expires_at
), moved AS (
    INSERT INTO {failed} (uuid, connection, queue, name, payload, exception, failed_at,
                          attempts, max_tries, batch_id)
    SELECT id, %s, queue, name, payload,
        format('conveyor.errors.WorkerLost: worker lost: the lease of worker %%s expired at '
               '%%s during attempt %%s of %%s', worker, round(lease_expires_at::numeric, 3),
               attempts, tries),
        %s, attempts, max_tries, batch_id
    FROM lost
    ON CONFLICT (uuid) DO UPDATE SET exception = EXCLUDED.exception,
        failed_at = EXCLUDED.failed_at, attempts = EXCLUDED.attempts,
        payload = EXCLUDED.payload, queue = EXCLUDED.queue, name = EXCLUDED.name
    RETURNING uuid
), back AS (
    UPDATE {jobs} j SET reserved_at = NULL, token = NULL, worker = NULL,
        lease_expires_at = NULL, available_at = %s
    FROM expired e WHERE j.id = e.id AND e.attempts < e.tries
    RETURNING j.id, j.queue
)
SELECT 'released', id FROM back
UNION ALL SELECT 'failed', uuid FROM moved
UNION ALL SELECT 'notified', pg_notify(%s, q.queue)::text FROM (SELECT DISTINCT queue FROM back) q;

-- name: get
SELECT id, queue, name, payload, attempts, max_tries, available_at, created_at, batch_id,
    token, reserved_at, lease_expires_at
FROM {jobs} WHERE id = %s;

-- name: failed_retry
WITH moved AS (
    DELETE FROM {failed}
    WHERE (%s::text[] IS NULL OR uuid = ANY(%s::text[])) AND (%s::text IS NULL OR queue = %s)
    RETURNING id AS fid, uuid, queue, name, payload, max_tries, batch_id
), ins AS (
    INSERT INTO {jobs} (id, queue, name, payload, attempts, max_tries, available_at,
                        created_at, batch_id)
    SELECT uuid, queue, name, payload, 0, max_tries, %s, %s, batch_id FROM moved
    ON CONFLICT (id) DO UPDATE SET queue = EXCLUDED.queue, name = EXCLUDED.name,
        payload = EXCLUDED.payload, attempts = 0, max_tries = EXCLUDED.max_tries,
        available_at = EXCLUDED.available_at, created_at = EXCLUDED.created_at,
        batch_id = EXCLUDED.batch_id, reserved_at = NULL, token = NULL, worker = NULL,
        lease_expires_at = NULL
    RETURNING queue
)
SELECT uuid, fid FROM moved
UNION ALL SELECT pg_notify(%s, q.queue)::text, NULL FROM (SELECT DISTINCT queue FROM ins) q;

-- name: queue_stats
SELECT queue,
    count(*) FILTER (WHERE reserved_at IS NULL AND available_at <= %s),
    count(*) FILTER (WHERE reserved_at IS NULL AND available_at > %s),
    count(*) FILTER (WHERE reserved_at IS NOT NULL),
    min(available_at) FILTER (WHERE reserved_at IS NULL AND available_at <= %s)
FROM {jobs} GROUP BY queue;

-- name: metrics_record
INSERT INTO {metrics} (minute, queue, name, worker, processed, failed, released, timed_out,
                       runtime_sum, runtime_max, wait_sum, wait_max, histogram)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (minute, queue, name, worker) DO UPDATE SET processed = EXCLUDED.processed,
    failed = EXCLUDED.failed, released = EXCLUDED.released, timed_out = EXCLUDED.timed_out,
    runtime_sum = EXCLUDED.runtime_sum, runtime_max = EXCLUDED.runtime_max,
    wait_sum = EXCLUDED.wait_sum, wait_max = EXCLUDED.wait_max,
    histogram = EXCLUDED.histogram;
