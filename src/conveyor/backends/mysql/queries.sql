-- conveyor's statements for MySQL / MariaDB, by name. {p} is the database-qualified table
-- prefix; {in} becomes "%s, %s, …" and {pairs} "(%s, %s), …" for the rows at hand;
-- {queues} becomes one "SELECT %s, %s" row per queue. Every value is a parameter.

-- name: migrations_table
CREATE TABLE IF NOT EXISTS {p}conveyor_migrations (
    version INT NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    applied_at DOUBLE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin

-- name: migrations_done
SELECT version FROM {p}conveyor_migrations

-- name: migrations_record
INSERT INTO {p}conveyor_migrations (version, name, applied_at) VALUES (%s, %s, %s)

-- name: jobs_insert
INSERT INTO {p}jobs (uuid, queue, name, payload, max_tries, available_at, created_at, batch_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)

-- name: ready_queues
-- which of the worker's queues have a due job and are not paused: one consistent read,
-- a few index dives, no locks; the claim then visits only these
SELECT q.queue FROM ({queues}) AS q
WHERE EXISTS (SELECT 1 FROM {p}jobs j WHERE j.queue = q.queue AND j.reserved_at IS NULL
              AND j.available_at <= %s)
  AND NOT EXISTS (SELECT 1 FROM {p}queue_control c WHERE c.queue = q.queue AND c.paused = 1)
ORDER BY q.pos

-- name: claim_select
SELECT id, uuid, queue, name, payload, attempts, max_tries, available_at, created_at, batch_id
FROM {p}jobs FORCE INDEX (jobs_queue_index)
WHERE queue = %s AND reserved_at IS NULL AND available_at <= %s
ORDER BY available_at, id LIMIT %s
FOR UPDATE SKIP LOCKED

-- name: claimed_by_tokens
-- a claim whose COMMIT reply was lost: the rows its token holds, if it did commit
SELECT id, uuid, queue, name, payload, attempts, max_tries, available_at, created_at,
    batch_id, token, reserved_at
FROM {p}jobs WHERE token IN ({in}) ORDER BY reserved_at, id LIMIT %s
FOR UPDATE

-- name: jobs_retoken
UPDATE {p}jobs SET token = %s, lease_expires_at = %s WHERE id IN ({in})

-- name: claim_update
UPDATE {p}jobs SET reserved_at = %s, attempts = attempts + 1, token = %s, worker = %s,
    lease_expires_at = %s
WHERE id IN ({in})

-- name: jobs_complete
DELETE FROM {p}jobs WHERE uuid IN ({in}) AND (uuid, token) IN ({pairs})

-- name: jobs_release
UPDATE {p}jobs SET reserved_at = NULL, token = NULL, worker = NULL, lease_expires_at = NULL,
    available_at = %s
WHERE uuid = %s AND token = %s

-- name: jobs_held
SELECT id, uuid FROM {p}jobs WHERE uuid IN ({in}) AND (uuid, token) IN ({pairs}) FOR UPDATE

-- name: jobs_extend
UPDATE {p}jobs SET lease_expires_at = %s WHERE id IN ({in})

-- name: jobs_for_failure
SELECT id, uuid, queue, name, payload, attempts, max_tries, batch_id FROM {p}jobs
WHERE uuid IN ({in}) AND (uuid, token) IN ({pairs}) FOR UPDATE

-- name: jobs_for_failure_any_token
SELECT id, uuid, queue, name, payload, attempts, max_tries, batch_id FROM {p}jobs
WHERE id IN ({in}) FOR UPDATE

-- name: failed_insert
REPLACE INTO {p}failed_jobs (uuid, connection, queue, name, payload, exception, failed_at,
    attempts, max_tries, batch_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)

-- name: jobs_delete_ids
DELETE FROM {p}jobs WHERE id IN ({in})

-- name: jobs_expired
SELECT id, uuid, attempts, max_tries, worker, lease_expires_at FROM {p}jobs
WHERE lease_expires_at < %s
ORDER BY lease_expires_at LIMIT %s
FOR UPDATE SKIP LOCKED

-- name: jobs_put_back
UPDATE {p}jobs SET reserved_at = NULL, token = NULL, worker = NULL, lease_expires_at = NULL,
    available_at = %s
WHERE id IN ({in})

-- name: jobs_get
SELECT id, uuid, queue, name, payload, attempts, max_tries, available_at, created_at, batch_id,
    token, reserved_at, lease_expires_at
FROM {p}jobs WHERE uuid = %s

-- name: failed_list
SELECT uuid, connection, queue, name, payload, exception, failed_at, attempts
FROM {p}failed_jobs ORDER BY failed_at DESC, id DESC LIMIT %s OFFSET %s

-- name: failed_list_queue
SELECT uuid, connection, queue, name, payload, exception, failed_at, attempts
FROM {p}failed_jobs WHERE queue = %s ORDER BY failed_at DESC, id DESC LIMIT %s OFFSET %s

-- name: failed_get
SELECT uuid, connection, queue, name, payload, exception, failed_at, attempts
FROM {p}failed_jobs WHERE uuid = %s

-- name: failed_all
SELECT uuid FROM {p}failed_jobs ORDER BY id FOR UPDATE

-- name: failed_all_queue
SELECT uuid FROM {p}failed_jobs WHERE queue = %s ORDER BY id FOR UPDATE

-- name: failed_some
SELECT uuid FROM {p}failed_jobs WHERE uuid IN ({in}) FOR UPDATE

-- name: failed_some_queue
SELECT uuid FROM {p}failed_jobs WHERE uuid IN ({in}) AND queue = %s FOR UPDATE

-- name: jobs_delete_uuids
DELETE FROM {p}jobs WHERE uuid IN ({in})

-- name: failed_requeue
INSERT INTO {p}jobs (uuid, queue, name, payload, attempts, max_tries, available_at, created_at,
    batch_id)
SELECT uuid, queue, name, payload, 0, max_tries, %s, %s, batch_id FROM {p}failed_jobs
WHERE uuid IN ({in}) ORDER BY id

-- name: failed_delete_uuids
DELETE FROM {p}failed_jobs WHERE uuid IN ({in})

-- name: failed_forget
DELETE FROM {p}failed_jobs WHERE uuid = %s

-- name: failed_flush
DELETE FROM {p}failed_jobs

-- name: failed_flush_older
DELETE FROM {p}failed_jobs WHERE failed_at < %s

-- name: queue_pause
INSERT INTO {p}queue_control (queue, paused) VALUES (%s, 1) ON DUPLICATE KEY UPDATE paused = 1

-- name: queue_resume
DELETE FROM {p}queue_control WHERE queue = %s

-- name: queues_paused
SELECT queue FROM {p}queue_control WHERE paused = 1

-- name: queue_clear
DELETE FROM {p}jobs WHERE queue IN ({in}) AND reserved_at IS NULL

-- name: control_set
REPLACE INTO {p}control (name, value) VALUES (%s, %s)

-- name: control_get
SELECT value FROM {p}control WHERE name = %s

-- name: worker_upsert
REPLACE INTO {p}workers (name, data, last_heartbeat) VALUES (%s, %s, %s)

-- name: worker_list
SELECT data FROM {p}workers ORDER BY name

-- name: worker_remove
DELETE FROM {p}workers WHERE name = %s

-- name: queue_stats
SELECT queue,
    SUM(reserved_at IS NULL AND available_at <= %s),
    SUM(reserved_at IS NULL AND available_at > %s),
    SUM(reserved_at IS NOT NULL),
    MIN(CASE WHEN reserved_at IS NULL AND available_at <= %s THEN available_at END)
FROM {p}jobs GROUP BY queue

-- name: failed_counts
SELECT queue, COUNT(*) FROM {p}failed_jobs GROUP BY queue

-- name: metrics_upsert
REPLACE INTO {p}metrics (minute, queue, name, worker, processed, failed, released, timed_out,
    runtime_sum, runtime_max, wait_sum, wait_max, histogram)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)

-- name: metrics_read
SELECT minute, queue, name, worker, processed, failed, released, timed_out, runtime_sum,
    runtime_max, wait_sum, wait_max, histogram
FROM {p}metrics WHERE minute >= %s AND minute < %s ORDER BY minute, queue, name, worker

-- name: metrics_prune
DELETE FROM {p}metrics WHERE minute < %s

-- name: wake_probe
-- the waiter's cheap question: the newest job's id (moves on every insert) and whether
-- any of its queues has a due job; both answered from indexes
SELECT (SELECT MAX(id) FROM {p}jobs),
    EXISTS (SELECT 1 FROM {p}jobs WHERE queue IN ({in}) AND reserved_at IS NULL
            AND available_at <= %s)
