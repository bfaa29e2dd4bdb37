-- batches (docs/batches.md). job_batches itself comes with schema 1.
-- One row per member job: its outcome is recorded once, so a re-run never counts twice.
CREATE TABLE IF NOT EXISTS {s}.{p}job_batch_members (
    batch_id text NOT NULL,
    job_id text NOT NULL,
    outcome text,
    PRIMARY KEY (batch_id, job_id)
);
-- Counter deltas in a few shard rows per batch: hundreds of workers recording outcomes
-- update different rows instead of queueing on the job_batches row. Reads add them up;
-- they are folded into job_batches when the batch finishes.
CREATE TABLE IF NOT EXISTS {s}.{p}job_batch_counts (
    batch_id text NOT NULL,
    shard integer NOT NULL,
    total integer NOT NULL DEFAULT 0,
    pending integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, shard)
);
CREATE INDEX IF NOT EXISTS {p}job_batches_created_index ON {s}.{p}job_batches (created_at);
CREATE INDEX IF NOT EXISTS {p}job_batches_finished_index
    ON {s}.{p}job_batches (finished_at) WHERE finished_at IS NOT NULL;
-- keys of jobs_insert_once: a callback or chain link is inserted once per key
CREATE TABLE IF NOT EXISTS {s}.{p}dispatch_keys (
    key text PRIMARY KEY,
    created_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}dispatch_keys_created_index ON {s}.{p}dispatch_keys (created_at);
