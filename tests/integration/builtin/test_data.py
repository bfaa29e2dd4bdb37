"""ProcessDataJob: batches roll back alone; analytics are idempotent; cache warming."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.builtin import data
from conveyor.builtin.cache import RedisCache, SqliteCache
from conveyor.testing import run_until_empty
from tests.conftest import require_server


def make_shop(path: Path, products: int = 1000) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, price REAL NOT NULL "
                     "CHECK (price >= 0), stock INTEGER NOT NULL DEFAULT 0)")
        conn.executemany("INSERT INTO products (id, price) VALUES (?, ?)",
                         ((i, 1.0) for i in range(1, products + 1)))
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, day TEXT, branch_id INT, "
                     "total REAL)")
        conn.executemany("INSERT INTO orders (day, branch_id, total) VALUES (?, ?, ?)",
                         ((f"2026-11-{1 + i % 28:02d}", 1 + i % 3, i * 1.25)
                          for i in range(5000)))
        conn.execute("CREATE TABLE daily_sales (day TEXT, branch_id INT, orders INT, "
                     "revenue REAL, PRIMARY KEY (day, branch_id))")


def make_app(tmp_path: Path) -> tuple[Conveyor, data.DataService, Path]:
    shop = tmp_path / "shop.db"
    make_shop(shop)
    app = Conveyor(f"sqlite:///{tmp_path / 'q.db'}")
    ops = data.install(app)
    ops.register("bulk_product_update", data.bulk_update(
        lambda: sqlite3.connect(shop), "products", columns=("price", "stock")))
    ops.register("calculate_analytics", data.rebuild(lambda: sqlite3.connect(shop), [
        "DELETE FROM daily_sales WHERE day BETWEEN :start AND :end",
        "INSERT INTO daily_sales SELECT day, branch_id, COUNT(*), ROUND(SUM(total), 2) "
        "FROM orders WHERE day BETWEEN :start AND :end GROUP BY day, branch_id",
    ], count_query="SELECT COUNT(*) FROM daily_sales WHERE day BETWEEN :start AND :end"))
    return app, ops, shop


def prices(shop: Path) -> dict[int, float]:
    with sqlite3.connect(shop) as conn:
        return dict(conn.execute("SELECT id, price FROM products"))


def test_a_bad_row_rolls_back_its_batch_alone(tmp_path: Path) -> None:
    _app, ops, shop = make_app(tmp_path)
    rows: list[dict[str, object]] = [{"id": i, "price": 2.5} for i in range(1, 1001)]
    rows[436] = {"id": 437, "price": -1}  # violates CHECK (price >= 0): row 437
    rows.append({"id": 99_999, "price": 3.0})  # no such product: skipped
    result = ops.execute("bulk_product_update", rows, {"batch_size": 100})
    assert result["applied"] == 900 and result["skipped"] == 1 and result["failed"] == 100
    (failure,) = result["failed_batches"]
    assert failure["rows"] == [401, 500] and "row 437" in failure["error"]
    after = prices(shop)
    assert all(after[i] == 1.0 for i in range(401, 501))
    assert all(after[i] == 2.5 for i in range(1, 1001) if not 401 <= i <= 500)


def test_failed_batches_can_fail_the_job(tmp_path: Path) -> None:
    app, ops, shop = make_app(tmp_path)
    rows: list[dict[str, object]] = [{"id": i, "stock": 5} for i in range(1, 301)]
    rows[250] = {"id": 251, "colour": "red"}
    job_id = ops.run("bulk_product_update", rows, {"batch_size": 50, "on_batch_error": "fail"})
    run_until_empty(app)
    failed = app.backend.failed_get(job_id)
    assert failed is not None and failed.attempts == 1
    assert "rows 251-300: row 251: column(s) ['colour'] may not be updated" in failed.summary
    assert "applied 250, skipped 0, failed 50" in failed.summary
    with sqlite3.connect(shop) as conn:
        assert conn.execute("SELECT COUNT(*) FROM products WHERE stock = 5").fetchone() == (250,)


def test_analytics_rerun_gives_identical_tables(tmp_path: Path) -> None:
    app, ops, shop = make_app(tmp_path)
    params = {"start": "2026-11-01", "end": "2026-11-30"}

    def dump() -> list[tuple[object, ...]]:
        with sqlite3.connect(shop) as conn:
            return conn.execute("SELECT * FROM daily_sales ORDER BY day, branch_id").fetchall()

    ops.run("calculate_analytics", params)
    run_until_empty(app)
    first = dump()
    assert len(first) == 28 * 3 and sum(r[2] for r in first) == 5000  # type: ignore[misc]
    ops.run("calculate_analytics", params)
    ops.run("calculate_analytics", params)
    run_until_empty(app)
    assert dump() == first
    assert app.backend.failed_list() == []


def test_warm_cache_sqlite_with_ttl(tmp_path: Path) -> None:
    now = [1000.0]
    cache = SqliteCache(tmp_path / "cache.db", clock=lambda: now[0])
    op = data.warm_cache(cache, {"top": lambda: {"top:1": [1, 2, 3]},
                                 "prices": lambda: {f"price:{i}": i for i in range(10)}})
    result = op(None, {"ttl": 60})
    assert result["keys"] == 11 and cache.get("top:1") == [1, 2, 3]
    now[0] += 61
    assert cache.get("top:1") is None
    cache.close()


def test_warm_cache_redis(tmp_path: Path) -> None:
    require_server("redis", "127.0.0.1", 6379)
    cache = RedisCache("redis://127.0.0.1:6379/14", prefix=f"cv-test:{tmp_path.name}:")
    try:
        data.warm_cache(cache, {"x": lambda: {"k": {"a": 1}}})(["x"], {"ttl": 30})
        assert cache.get("k") == {"a": 1}
        ttl = cache.client.pttl(cache.prefix + "k")
        assert 0 < int(ttl) <= 30_000  # type: ignore[arg-type]
        with pytest.raises(Exception, match="unknown cache warmer"):
            data.warm_cache(cache, {})(["nope"], {})
    finally:
        cache.client.delete(cache.prefix + "k")
        cache.close()
