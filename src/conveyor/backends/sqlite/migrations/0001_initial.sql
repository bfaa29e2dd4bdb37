-- conveyor schema 1 for SQLite. {p} is the table prefix.
-- The seed's columns are kept (id, queue, payload, attempts, reserved_at, available_at,
-- created_at); id is the job's public id (a time-ordered UUID).
CREATE TABLE IF NOT EXISTS {p}jobs (
    id TEXT PRIMARY KEY NOT NULL,
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_tries INTEGER,
    reserved_at REAL,
    available_at REAL NOT NULL,
    created_at REAL NOT NULL,
    lease_expires_at REAL,
    token TEXT,
    worker TEXT,
    batch_id TEXT
);
-- the ready predicate only: waiting jobs, by queue then due time
CREATE INDEX IF NOT EXISTS {p}jobs_queue_index
    ON {p}jobs (queue, available_at) WHERE reserved_at IS NULL;
CREATE INDEX IF NOT EXISTS {p}jobs_lease_index
    ON {p}jobs (lease_expires_at) WHERE reserved_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS {p}failed_jobs (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    connection TEXT NOT NULL,
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    exception TEXT NOT NULL,
    failed_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_tries INTEGER,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS {p}failed_jobs_failed_at_index ON {p}failed_jobs (failed_at);

CREATE TABLE IF NOT EXISTS {p}queue_control (
    queue TEXT PRIMARY KEY NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS {p}control (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS {p}workers (
    name TEXT PRIMARY KEY NOT NULL,
    data TEXT NOT NULL,
    last_heartbeat REAL NOT NULL
);
