-- The PostgreSQL store's batch statements ("-- name: x" starts one). {batches}, {members},
-- {counts}, {keys}, {jobs} are the schema-qualified, prefixed tables. Every value is bound.

-- name: create
INSERT INTO {batches} (id, name, total_jobs, pending_jobs, failed_jobs, failed_job_ids,
                       options, created_at)
VALUES (%s, %s, %s, %s, 0, '[]', %s, %s);

-- name: members_new
-- a fresh batch: a repeated job id fails the whole transaction
INSERT INTO {members} (batch_id, job_id) SELECT %s, unnest(%s::text[]);

-- name: members_add
INSERT INTO {members} (batch_id, job_id) SELECT %s, unnest(%s::text[])
ON CONFLICT DO NOTHING RETURNING job_id;

-- name: exists
SELECT 1 FROM {batches} WHERE id = %s;

-- name: count_add
INSERT INTO {counts} (batch_id, shard, total, pending) VALUES (%s, %s, %s, %s)
ON CONFLICT (batch_id, shard) DO UPDATE
SET total = {counts}.total + EXCLUDED.total, pending = {counts}.pending + EXCLUDED.pending;

-- name: read
-- the batch row plus its not yet folded counter shards
SELECT b.id, b.name, b.total_jobs + coalesce(s.total, 0), b.pending_jobs + coalesce(s.pending, 0),
    b.failed_jobs + coalesce(s.failed, 0), b.failed_job_ids, b.options, b.created_at,
    b.cancelled_at, b.finished_at
FROM {batches} b LEFT JOIN LATERAL (
    SELECT sum(c.total) AS total, sum(c.pending) AS pending, sum(c.failed) AS failed
    FROM {counts} c WHERE c.batch_id = b.id
) s ON true
WHERE b.id = ANY(%s::text[]);

-- name: list
SELECT b.id, b.name, b.total_jobs + coalesce(s.total, 0), b.pending_jobs + coalesce(s.pending, 0),
    b.failed_jobs + coalesce(s.failed, 0), b.failed_job_ids, b.options, b.created_at,
    b.cancelled_at, b.finished_at
FROM (SELECT * FROM {batches} ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s) b
LEFT JOIN LATERAL (
    SELECT sum(c.total) AS total, sum(c.pending) AS pending, sum(c.failed) AS failed
    FROM {counts} c WHERE c.batch_id = b.id
) s ON true
ORDER BY b.created_at DESC, b.id DESC;

-- name: cancel
UPDATE {batches} SET cancelled_at = coalesce(cancelled_at, %s) WHERE id = %s;

-- name: record
-- Each member's outcome moves once (none -> any, failed -> succeeded | cancelled), its row
-- locked while read so two workers marking the same job serialise on that row only; the
-- counter change goes to one shard row; failed_job_ids is rewritten only when it changes.
WITH m AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) AS m(batch_id, job_id, outcome)
), old AS (
    SELECT cur.batch_id, cur.job_id, cur.outcome AS old, m.outcome AS new
    FROM {members} cur JOIN m ON cur.batch_id = m.batch_id AND cur.job_id = m.job_id
    WHERE cur.outcome IS NULL OR (cur.outcome = 'failed' AND m.outcome <> 'failed')
    FOR UPDATE OF cur
), upd AS (
    UPDATE {members} t SET outcome = old.new FROM old
    WHERE t.batch_id = old.batch_id AND t.job_id = old.job_id
    RETURNING old.batch_id, old.job_id, old.old, old.new
), d AS (
    SELECT batch_id,
        sum(CASE WHEN new = 'failed' THEN 0 ELSE -1 END) AS dp,
        sum(CASE WHEN new = 'failed' THEN 1 WHEN old = 'failed' THEN -1 ELSE 0 END) AS df,
        coalesce(array_agg(job_id) FILTER (WHERE new = 'failed'), '{}') AS added,
        coalesce(array_agg(job_id) FILTER (WHERE old = 'failed'), '{}') AS removed
    FROM upd GROUP BY batch_id
), c AS (
    INSERT INTO {counts} (batch_id, shard, pending, failed)
    SELECT batch_id, %s, dp, df FROM d
    ON CONFLICT (batch_id, shard) DO UPDATE
    SET pending = {counts}.pending + EXCLUDED.pending, failed = {counts}.failed + EXCLUDED.failed
    RETURNING 1
), f AS (
    UPDATE {batches} b SET failed_job_ids = (
        SELECT coalesce(json_agg(x ORDER BY o), '[]')::text FROM (
            SELECT e.x, e.o FROM json_array_elements_text(b.failed_job_ids::json)
                WITH ORDINALITY AS e(x, o) WHERE NOT (e.x = ANY(d.removed))
            UNION ALL
            SELECT a.x, 1000000000 + a.o FROM unnest(d.added) WITH ORDINALITY AS a(x, o)
        ) ids)
    FROM d WHERE b.id = d.batch_id AND (cardinality(d.added) > 0 OR cardinality(d.removed) > 0)
    RETURNING 1
)
SELECT (SELECT count(*) FROM c) + (SELECT count(*) FROM f);

-- name: finish
-- every member has an outcome: fold the shards into the row and stamp finished_at once.
-- Folding only adds what this statement deleted, so a concurrent fold or record is safe.
WITH gone AS (DELETE FROM {counts} WHERE batch_id = %s RETURNING total, pending, failed)
UPDATE {batches} SET total_jobs = total_jobs + (SELECT coalesce(sum(total), 0) FROM gone),
    pending_jobs = pending_jobs + (SELECT coalesce(sum(pending), 0) FROM gone),
    failed_jobs = failed_jobs + (SELECT coalesce(sum(failed), 0) FROM gone),
    finished_at = coalesce(finished_at, %s)
WHERE id = %s;

-- name: prune
WITH old AS (
    DELETE FROM {batches} WHERE finished_at IS NOT NULL AND finished_at < %s RETURNING id
), m AS (
    DELETE FROM {members} WHERE batch_id IN (SELECT id FROM old) RETURNING 1
), c AS (
    DELETE FROM {counts} WHERE batch_id IN (SELECT id FROM old) RETURNING 1
), k AS (
    DELETE FROM {keys} WHERE created_at < %s RETURNING 1
)
SELECT (SELECT count(*) FROM old), (SELECT count(*) FROM m), (SELECT count(*) FROM c),
    (SELECT count(*) FROM k);

-- name: insert_once
-- the key and the jobs in one statement: the jobs exist iff this statement took the key
WITH k AS (
    INSERT INTO {keys} (key, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1
), ins AS (
    INSERT INTO {jobs} (id, queue, name, payload, max_tries, available_at, created_at, batch_id)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::int[],
                         %b::float8[], %b::float8[], %b::text[])  -- binary, as in insert
    WHERE EXISTS (SELECT 1 FROM k)
    RETURNING queue
), n AS (
    SELECT pg_notify(%s, q.queue) FROM (SELECT DISTINCT queue FROM ins) q
)
SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM n);
