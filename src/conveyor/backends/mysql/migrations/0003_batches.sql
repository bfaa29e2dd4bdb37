-- batches (docs/batches.md): the seed's job_batches columns (times as DOUBLE, the caller's
-- epoch seconds), one member row per job, counter shards, and jobs_insert_once keys.
CREATE TABLE IF NOT EXISTS {p}job_batches (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    total_jobs INT NOT NULL,
    pending_jobs INT NOT NULL,
    failed_jobs INT NOT NULL,
    failed_job_ids LONGTEXT NOT NULL,
    options MEDIUMTEXT NULL,
    cancelled_at DOUBLE NULL,
    created_at DOUBLE NOT NULL,
    finished_at DOUBLE NULL,
    INDEX job_batches_created_index (created_at),
    INDEX job_batches_finished_index (finished_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- one row per member job: its outcome is recorded once, so a re-run never counts twice
CREATE TABLE IF NOT EXISTS {p}job_batch_members (
    batch_id VARCHAR(64) NOT NULL,
    job_id VARCHAR(255) NOT NULL,
    outcome VARCHAR(16) NULL,
    PRIMARY KEY (batch_id, job_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- counter deltas in a few shard rows per batch, so workers do not queue on one row lock;
-- folded into job_batches when the batch finishes
CREATE TABLE IF NOT EXISTS {p}job_batch_counts (
    batch_id VARCHAR(64) NOT NULL,
    shard INT NOT NULL,
    total INT NOT NULL DEFAULT 0,
    pending INT NOT NULL DEFAULT 0,
    failed INT NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, shard)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS {p}dispatch_keys (
    `key` VARCHAR(255) NOT NULL PRIMARY KEY,
    created_at DOUBLE NOT NULL,
    INDEX dispatch_keys_created_index (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
