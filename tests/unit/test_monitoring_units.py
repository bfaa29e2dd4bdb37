"""Pure parts of monitoring: durations, rates, histogram percentiles, the aggregator."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.backends import open_backend
from conveyor.errors import ConfigurationError
from conveyor.monitoring.metrics import MetricsRecorder, bucket_index, minute_of
from conveyor.monitoring.stats import Summary, parse_duration, parse_rate
from conveyor.records import RUNTIME_BUCKETS, MetricSample


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1h", 3600.0), ("2d", 172800.0),
    ("1.5h", 5400.0), ("250ms", 0.25), (" 1 H ", 3600.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-5m", "5 minutes", "1h30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigurationError, match="not a duration"):
        parse_duration(text, "--since")


def test_parse_rate() -> None:
    assert parse_rate("5%") == 0.05 and parse_rate("0.2") == 0.2
    with pytest.raises(ConfigurationError, match="between 0 and 1"):
        parse_rate("150%")
    with pytest.raises(ConfigurationError, match="not a rate"):
        parse_rate("lots")


def test_bucket_index_uses_upper_bounds() -> None:
    assert bucket_index(0.0) == 0 and bucket_index(0.001) == 0
    assert bucket_index(0.0011) == 1 and bucket_index(0.1) == 6
    assert bucket_index(300.0) == len(RUNTIME_BUCKETS) - 1
    assert bucket_index(301.0) == len(RUNTIME_BUCKETS)  # "above"


def summary(counts: dict[int, int], runtime_max: float) -> Summary:
    s = Summary(processed=sum(counts.values()), runtime_max=runtime_max)
    for index, count in counts.items():
        s.histogram[index] = count
    return s


def test_percentiles_interpolate_inside_the_bucket_and_cap_at_the_maximum() -> None:
    s = summary({6: 8, 8: 2}, runtime_max=0.45)  # 8 in (50, 100] ms, 2 in (250, 500] ms
    assert s.percentile(0.5) == pytest.approx(0.08125)
    assert s.percentile(0.95) == pytest.approx(0.4375)
    assert s.percentile(0.99) == 0.45  # capped
    assert Summary().percentile(0.95) is None
    above = summary({len(RUNTIME_BUCKETS): 2}, runtime_max=900.0)
    assert above.percentile(0.5) == pytest.approx(600.0)  # between 300 s and the maximum


def test_to_dict_rates_over_the_window() -> None:
    s = Summary(processed=30, failed=3, released=6, runtime_sum=3.0)
    d = s.to_dict(600.0)
    assert (d["throughput_per_min"], d["failure_rate"], d["succeeded"]) == (3.0, 0.1, 21)
    assert Summary().to_dict(60.0)["runtime_avg"] is None


def test_recorder_keeps_rows_when_the_store_fails_and_forgets_finished_minutes(
        tmp_path: Path) -> None:
    now = [1_900_000_020.0]
    unreachable = open_backend(f"sqlite:///{tmp_path / 'gone' / 'm.db'}")
    recorder = MetricsRecorder(unreachable, "w1", lambda: now[0])
    recorder.record(queue="q", name="a", outcome="failed", runtime=0.2, wait=1.5,
                    timed_out=True)
    recorder.record(queue="q", name="a", outcome="done", runtime=0.01, wait=0.5)
    assert recorder.flush() is False  # the store cannot be reached: the rows stay
    recorder.backend = backend = open_backend(f"sqlite:///{tmp_path / 'm.db'}")
    backend.migrate()
    now[0] += 60  # a new minute: once written, the old row is forgotten
    assert recorder.flush() is True
    (row,) = backend.metrics_read(0)
    assert (row.minute, row.processed, row.failed, row.timed_out) == (
        minute_of(1_900_000_020.0), 2, 1, 1)
    assert (row.runtime_max, row.wait_sum, row.wait_max) == (0.2, 2.0, 1.5)
    assert row.histogram[bucket_index(0.2)] == 1 and row.histogram[bucket_index(0.01)] == 1
    assert recorder._samples == {}
    # a later attempt of the same minute starts a fresh row only in memory; a restarted
    # recorder reads its current row back before adding to it
    backend.metrics_record([MetricSample(minute_of(now[0]), "q", "a", "w1", processed=4)])
    again = MetricsRecorder(backend, "w1", lambda: now[0])
    again._resume_current_minute()
    again.record(queue="q", name="a", outcome="done", runtime=0.0, wait=0.0)
    assert again.flush()
    assert [r.processed for r in backend.metrics_read(minute_of(now[0]))] == [5]
    backend.close()
