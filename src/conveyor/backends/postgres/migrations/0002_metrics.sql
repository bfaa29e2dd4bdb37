-- per-minute job metrics, one row per worker (it rewrites its own row on each flush)
CREATE TABLE IF NOT EXISTS {s}.{p}metrics (
    minute bigint NOT NULL,
    queue text NOT NULL,
    name text NOT NULL,
    worker text NOT NULL,
    processed integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    released integer NOT NULL DEFAULT 0,
    timed_out integer NOT NULL DEFAULT 0,
    runtime_sum double precision NOT NULL DEFAULT 0,
    runtime_max double precision NOT NULL DEFAULT 0,
    wait_sum double precision NOT NULL DEFAULT 0,
    wait_max double precision NOT NULL DEFAULT 0,
    histogram integer[] NOT NULL,
    PRIMARY KEY (minute, queue, name, worker)
);
