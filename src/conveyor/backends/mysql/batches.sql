-- The MySQL / MariaDB store's batch statements ("-- name: x" starts one). {p} is the
-- qualified table prefix; {in} and {pairs} expand to one placeholder group per value.

-- name: create
INSERT INTO {p}job_batches (id, name, total_jobs, pending_jobs, failed_jobs, failed_job_ids,
                            options, created_at)
VALUES (%s, %s, %s, %s, 0, '[]', %s, %s)

-- name: member_new
INSERT INTO {p}job_batch_members (batch_id, job_id) VALUES (%s, %s)

-- name: member_add
INSERT IGNORE INTO {p}job_batch_members (batch_id, job_id) VALUES (%s, %s)

-- name: exists
SELECT 1 FROM {p}job_batches WHERE id = %s

-- name: count_add
INSERT INTO {p}job_batch_counts (batch_id, shard, total, pending, failed)
VALUES (%s, %s, %s, %s, %s)
ON DUPLICATE KEY UPDATE total = total + VALUES(total), pending = pending + VALUES(pending),
    failed = failed + VALUES(failed)

-- name: members_lock
-- the member rows of this call's marks, locked: two workers marking one job take turns
SELECT batch_id, job_id, outcome FROM {p}job_batch_members
WHERE (batch_id, job_id) IN ({pairs}) ORDER BY batch_id, job_id FOR UPDATE

-- name: member_set
UPDATE {p}job_batch_members SET outcome = %s WHERE batch_id = %s AND job_id = %s

-- name: failed_ids_lock
SELECT failed_job_ids FROM {p}job_batches WHERE id = %s FOR UPDATE

-- name: failed_ids_set
UPDATE {p}job_batches SET failed_job_ids = %s WHERE id = %s

-- name: read
SELECT b.id, b.name, b.total_jobs + COALESCE(SUM(c.total), 0),
    b.pending_jobs + COALESCE(SUM(c.pending), 0), b.failed_jobs + COALESCE(SUM(c.failed), 0),
    b.failed_job_ids, b.options, b.created_at, b.cancelled_at, b.finished_at
FROM {p}job_batches b LEFT JOIN {p}job_batch_counts c ON c.batch_id = b.id
WHERE b.id IN ({in})
GROUP BY b.id

-- name: list
SELECT b.id, b.name, b.total_jobs + COALESCE(SUM(c.total), 0),
    b.pending_jobs + COALESCE(SUM(c.pending), 0), b.failed_jobs + COALESCE(SUM(c.failed), 0),
    b.failed_job_ids, b.options, b.created_at, b.cancelled_at, b.finished_at
FROM (SELECT * FROM {p}job_batches ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s) b
LEFT JOIN {p}job_batch_counts c ON c.batch_id = b.id
GROUP BY b.id
ORDER BY b.created_at DESC, b.id DESC

-- name: cancel
UPDATE {p}job_batches SET cancelled_at = COALESCE(cancelled_at, %s) WHERE id = %s

-- name: shards_lock
SELECT COALESCE(SUM(total), 0), COALESCE(SUM(pending), 0), COALESCE(SUM(failed), 0)
FROM {p}job_batch_counts WHERE batch_id = %s FOR UPDATE

-- name: shards_delete
DELETE FROM {p}job_batch_counts WHERE batch_id = %s

-- name: finish
UPDATE {p}job_batches SET total_jobs = total_jobs + %s, pending_jobs = pending_jobs + %s,
    failed_jobs = failed_jobs + %s, finished_at = COALESCE(finished_at, %s)
WHERE id = %s

-- name: prunable
SELECT id FROM {p}job_batches WHERE finished_at IS NOT NULL AND finished_at < %s

-- name: prune_members
DELETE FROM {p}job_batch_members WHERE batch_id = %s

-- name: prune_counts
DELETE FROM {p}job_batch_counts WHERE batch_id = %s

-- name: prune_batch
DELETE FROM {p}job_batches WHERE id = %s

-- name: prune_keys
DELETE FROM {p}dispatch_keys WHERE created_at < %s

-- name: key_take
INSERT IGNORE INTO {p}dispatch_keys (`key`, created_at) VALUES (%s, %s)
