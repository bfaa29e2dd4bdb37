-- batches (docs/batches.md): the seed's job_batches columns; failed_job_ids is a JSON list
CREATE TABLE IF NOT EXISTS {p}job_batches (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    total_jobs INTEGER NOT NULL,
    pending_jobs INTEGER NOT NULL,
    failed_jobs INTEGER NOT NULL,
    failed_job_ids TEXT NOT NULL,
    options TEXT NOT NULL,
    cancelled_at REAL,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS {p}job_batches_created_index ON {p}job_batches (created_at);
CREATE INDEX IF NOT EXISTS {p}job_batches_finished_index
    ON {p}job_batches (finished_at) WHERE finished_at IS NOT NULL;
-- one row per member job: its outcome is recorded once, so a re-run never counts twice
CREATE TABLE IF NOT EXISTS {p}job_batch_members (
    batch_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    outcome TEXT,
    PRIMARY KEY (batch_id, job_id)
) WITHOUT ROWID;
-- keys of jobs_insert_once: a callback or chain link is inserted once per key
CREATE TABLE IF NOT EXISTS {p}dispatch_keys (
    key TEXT PRIMARY KEY NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {p}dispatch_keys_created_index ON {p}dispatch_keys (created_at);
