"""The security review, as tests: no unsafe deserialisation or evaluation in the source,
secrets never shown (logs, monitor, failed rows' connection column, worker records, reprs),
the payload cap enforced at dispatch and at reserve, private files."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import Conveyor
from conveyor.backends import redact_url
from conveyor.errors import PayloadTooLarge
from conveyor.settings import load_settings
from conveyor.testing import run_until_empty
from tests.conftest import require_server
from tests.integration.helpers import run_conveyor

SOURCE = Path(__file__).resolve().parents[2] / "src" / "conveyor"
SECRET = "Sup3r-s3cret-pw"

UNSAFE = {
    "pickle-like import": re.compile(
        r"^\s*(import|from)\s+(pickle|cPickle|_pickle|marshal|shelve|dill|cloudpickle|jsonpickle)"
        r"\b", re.M),
    "pickle/marshal call": re.compile(r"\b(pickle|marshal)\.(loads?|dumps?|Unpickler)\b"),
    "eval/exec": re.compile(r"(?<![\w.])(eval|exec)\s*\("),
    "compile of code": re.compile(r"(?<![\w.])compile\s*\([^)]*['\"]exec['\"]"),
    "__import__": re.compile(r"__import__\s*\("),
    "unsafe yaml": re.compile(r"yaml\.(unsafe_)?load\s*\((?![^)]*SafeLoader)"),
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system": re.compile(r"\bos\.(system|popen)\s*\("),
}


def test_the_source_has_no_unsafe_deserialisation_or_evaluation() -> None:
    hits = []
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        for what, pattern in UNSAFE.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                hits.append(f"{path.relative_to(SOURCE)}:{line}: {what}: {match.group(0)}")
    assert hits == []


def test_names_are_imported_only_from_the_operators_app_spec() -> None:
    """import_module appears only where the operator names modules (--app, optional CLI
    commands, store modules by URL scheme), never with a name read from a payload."""
    allowed = {"cli/context.py", "cli/main.py", "backends/__init__.py", "backends/stores.py"}
    users = {str(p.relative_to(SOURCE)) for p in SOURCE.rglob("*.py")
             if "import_module(" in p.read_text(encoding="utf-8")}
    assert users <= allowed, users - allowed


# -- secrets ----------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(password=st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")),
                        min_size=6, max_size=30).filter(lambda p: "@" not in p[-1:]),
       scheme=st.sampled_from(["postgresql", "redis", "mysql"]))
def test_redact_url_hides_any_password(password: str, scheme: str) -> None:
    url = f"{scheme}://shop:{password}@db.internal:5432/orders?sslmode=require"
    shown = redact_url(url)
    assert password not in shown, shown
    assert shown.startswith(f"{scheme}://shop:***@") and "sslmode=require" in shown
    assert password not in redact_url(f"{scheme}://db/orders?user=shop&password={password}")


def test_settings_and_the_app_never_show_secrets() -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    env = {"CONVEYOR_URL": f"postgresql://shop:{SECRET}@db/orders",
           "CONVEYOR_ENCRYPTION_KEYS": key, "MAIL_PASSWORD": SECRET}
    settings_ = load_settings(environ=env)
    app = Conveyor(settings=settings_)
    for text in (repr(settings_), str(settings_), repr(app), app.display_url):
        assert SECRET not in text and key not in text


@pytest.fixture
def pg_url_with_password() -> str:
    """PostgreSQL in trust mode accepts any password: the URL carries one that must never
    be shown anywhere."""
    from tests.backends.store_postgres import postgres_schema

    require_server("PostgreSQL", "127.0.0.1", 5432)
    with postgres_schema() as (url, _schema):
        yield url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")


def test_a_password_in_the_store_url_is_never_shown(pg_url_with_password: str,
                                                    tmp_path: Path) -> None:
    url = pg_url_with_password
    ledger = tmp_path / "ledger.txt"
    from tests.apps import basic

    app = basic.app
    app.use_store(url)
    try:
        app.backend.migrate()
        app.dispatch_many([app.get_job("fail_fast").prepare(1), app.get_job("noop").prepare(2)])
        outputs = []
        for args in (["work", "--stop-when-empty"], ["work", "--stop-when-empty", "--json"]):
            result = run_conveyor(url, ledger, *args)
            assert result.returncode == 0, result.stderr
            outputs += [result.stdout, result.stderr]
        for args in (["monitor"], ["monitor", "--json"], ["monitor", "--failed", "--json"],
                     ["monitor", "--workers", "--json"], ["failed"], ["failed", "--json"],
                     ["--connection", url.replace(":5432/", ":1/"), "monitor"]):
            result = run_conveyor(url, ledger, *args, app=None)
            outputs += [result.stdout, result.stderr]
        assert "fail_fast" in "".join(outputs)  # the commands did show something
        for text in outputs:
            assert SECRET not in text
        (failed,) = app.backend.failed_list()
        assert SECRET not in json.dumps(failed.to_dict())
        assert SECRET not in failed.connection and "postgres:" not in failed.connection
    finally:
        app.close()


# -- the payload cap ---------------------------------------------------------------------
def test_the_payload_cap_holds_at_dispatch_and_at_reserve(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cap.db'}"
    producer = Conveyor(url, payload_max_bytes=100_000)
    worker = Conveyor(url, payload_max_bytes=1_000)  # a stricter worker
    ran: list[int] = []
    for app in (producer, worker):
        app.job(name="blob")(lambda data: ran.append(len(data)))
    with pytest.raises(PayloadTooLarge, match="over the cap of 100000 bytes"):
        producer.get_job("blob").dispatch("x" * 100_001)
    assert producer.backend.queue_stats(0) == []  # nothing stored
    job_id = producer.get_job("blob").dispatch("x" * 5_000)  # fits the producer's cap
    run_until_empty(worker, ["default"])
    failed = worker.backend.failed_get(job_id)
    assert ran == [] and failed is not None and failed.attempts == 1
    assert "over the cap of 1000" in failed.exception


# -- files ----------------------------------------------------------------------------------
def test_the_sqlite_store_and_its_journal_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a common default: files would be world-readable
    try:
        path = tmp_path / "private.db"
        app = Conveyor(f"sqlite:///{path}")
        app.job(name="noop")(lambda: None)
        app.get_job("noop").dispatch()
        files = [p for p in tmp_path.iterdir() if p.name.startswith("private.db")]
        assert {p.name for p in files} >= {"private.db", "private.db-wal"}
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        app.close()
    finally:
        os.umask(old)
