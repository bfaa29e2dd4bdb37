-- per-minute job metrics, one row per worker (it rewrites its own row on each flush)
CREATE TABLE IF NOT EXISTS {p}metrics (
    minute BIGINT NOT NULL,
    queue VARCHAR(128) NOT NULL,
    name VARCHAR(255) NOT NULL,
    worker VARCHAR(255) NOT NULL,
    processed INT UNSIGNED NOT NULL DEFAULT 0,
    failed INT UNSIGNED NOT NULL DEFAULT 0,
    released INT UNSIGNED NOT NULL DEFAULT 0,
    timed_out INT UNSIGNED NOT NULL DEFAULT 0,
    runtime_sum DOUBLE NOT NULL DEFAULT 0,
    runtime_max DOUBLE NOT NULL DEFAULT 0,
    wait_sum DOUBLE NOT NULL DEFAULT 0,
    wait_max DOUBLE NOT NULL DEFAULT 0,
    histogram TEXT NOT NULL,
    PRIMARY KEY (minute, queue, name, worker)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
