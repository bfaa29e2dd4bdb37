-- conveyor schema 1 for MySQL 8.0.1+ / MariaDB 10.6+. {p} is the table prefix.
-- The seed's DDL is kept where it fits: jobs.id BIGINT UNSIGNED AUTO_INCREMENT, LONGTEXT
-- payload, INDEX jobs_queue_index. The job's public id (a time-ordered UUID string) is
-- jobs.uuid, as failed_jobs.uuid in the seed. Times are DOUBLE epoch seconds, not the seed's
-- INT UNSIGNED: the worker needs sub-second precision, and INT/TIMESTAMP stop in 2038/2106.
-- utf8mb4_bin: ids, tokens and queue names compare byte for byte (case matters).
CREATE TABLE IF NOT EXISTS {p}jobs (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    uuid VARCHAR(64) NOT NULL,
    queue VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    payload LONGTEXT NOT NULL,
    attempts INT UNSIGNED NOT NULL DEFAULT 0,
    max_tries INT UNSIGNED NULL,
    reserved_at DOUBLE NULL,
    available_at DOUBLE NOT NULL,
    created_at DOUBLE NOT NULL,
    lease_expires_at DOUBLE NULL,
    token VARCHAR(64) NULL,
    worker VARCHAR(255) NULL,
    batch_id VARCHAR(64) NULL,
    UNIQUE KEY jobs_uuid_unique (uuid),
    -- the claim's index: waiting rows (reserved_at IS NULL) of a queue by due time; the
    -- primary key at its end breaks ties in insertion order
    INDEX jobs_queue_index (queue, reserved_at, available_at),
    INDEX jobs_lease_index (lease_expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS {p}failed_jobs (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    uuid VARCHAR(255) NOT NULL,
    connection TEXT NOT NULL,
    queue VARCHAR(255) NOT NULL,
    name VARCHAR(255) NOT NULL,
    payload LONGTEXT NOT NULL,
    exception LONGTEXT NOT NULL,
    failed_at DOUBLE NOT NULL,
    attempts INT UNSIGNED NOT NULL DEFAULT 0,
    max_tries INT UNSIGNED NULL,
    batch_id VARCHAR(64) NULL,
    UNIQUE KEY failed_jobs_uuid_unique (uuid),
    INDEX failed_jobs_failed_at_index (failed_at),
    INDEX failed_jobs_queue_index (queue, failed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS {p}queue_control (
    queue VARCHAR(255) NOT NULL PRIMARY KEY,
    paused TINYINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS {p}control (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS {p}workers (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    data LONGTEXT NOT NULL,
    last_heartbeat DOUBLE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
