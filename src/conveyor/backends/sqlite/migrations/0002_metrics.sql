-- per-minute job metrics, one row per worker (it rewrites its own row on each flush)
CREATE TABLE IF NOT EXISTS {p}metrics (
    minute INTEGER NOT NULL,
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    worker TEXT NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    released INTEGER NOT NULL DEFAULT 0,
    timed_out INTEGER NOT NULL DEFAULT 0,
    runtime_sum REAL NOT NULL DEFAULT 0,
    runtime_max REAL NOT NULL DEFAULT 0,
    wait_sum REAL NOT NULL DEFAULT 0,
    wait_max REAL NOT NULL DEFAULT 0,
    histogram TEXT NOT NULL,
    PRIMARY KEY (minute, queue, name, worker)
);
