"""Process-manager configuration for workers: a supervisord program block (as the seed's)
and a systemd template unit. Both stop a worker with SIGTERM and wait longer than the
longest job may run, so no job is cut short by a deploy."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

#: seconds between the worker's grace period ending and the manager's SIGKILL
STOP_MARGIN = 30


@dataclass(frozen=True, slots=True)
class WorkerDeployment:
    program: str  # supervisord program / systemd unit name
    command: list[str]  # argv of the worker, without --grace
    directory: str
    user: str
    numprocs: int
    longest_timeout: float  # seconds: the longest job timeout the workers may run
    log_file: str

    @property
    def grace(self) -> int:
        """SIGTERM lets running jobs finish: as long as the longest timeout, plus a little."""
        return int(self.longest_timeout) + 5

    @property
    def stopwaitsecs(self) -> int:
        return self.grace + STOP_MARGIN

    def argv(self) -> str:
        return shlex.join([*self.command, "--grace", str(self.grace)])


def supervisord(d: WorkerDeployment) -> str:
    return f"""[program:{d.program}]
process_name=%(program_name)s_%(process_num)02d
command={d.argv()}
directory={d.directory}
user={d.user}
numprocs={d.numprocs}
autostart=true
autorestart=true
startsecs=1
; SIGTERM: stop fetching, let running jobs finish (--grace {d.grace}s), then exit 0
stopsignal=TERM
stopwaitsecs={d.stopwaitsecs}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={d.log_file}
stdout_logfile_maxbytes=50MB
stdout_logfile_backups=5
"""


def systemd(d: WorkerDeployment) -> str:
    return f"""# /etc/systemd/system/{d.program}@.service
# start {d.numprocs}: systemctl enable --now {d.program}@{{1..{d.numprocs}}}
[Unit]
Description=conveyor worker %i ({d.program})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={d.user}
WorkingDirectory={d.directory}
# settings (CONVEYOR_URL, passwords, ...) from the app's .env, kept out of this file
EnvironmentFile=-{d.directory}/.env
ExecStart={d.argv()}
# SIGTERM to the whole group, SIGKILL only after the grace period and a margin
KillMode=control-group
KillSignal=SIGTERM
TimeoutStopSec={d.stopwaitsecs}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""
