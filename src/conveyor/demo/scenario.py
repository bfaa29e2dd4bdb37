"""The burst the demo plays, the in-process burst worker that drains it, and the summary
(computed from the store, so it can be checked against it)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..builtin.email import Mailable
from ..jobs import PreparedJob
from ..routing import DEFAULT_WORKER_QUEUES
from ..testing.fcm_server import FcmServer
from ..worker.options import WorkerOptions
from ..worker.policy import WorkerDefaults
from ..worker.runner import Worker
from .app import NEWSLETTER_HTML, NEWSLETTER_TEXT, ORDER_HTML, ORDER_TEXT, DemoApp, today_range
from .store import DAYS, INVALID_EMAIL_CUSTOMER, StoreFacts

REQUESTER = "admin@grofresh.test"
CONFIRMATIONS = 150
PRICE_JOBS = 4
PRICE_BATCH = 500
QUEUE_ORDER = tuple(dict.fromkeys([*DEFAULT_WORKER_QUEUES, "reports", "data"]))
BAD_PRODUCT = 12_345  # a negative price: its batch of 500 rolls back, the job fails


@dataclass
class Tally:
    """Per-queue outcomes counted from the worker's events."""

    dispatched: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    runtime: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, demo: DemoApp) -> None:
        def count(event: str, queue: str, runtime: float = 0.0, **_: Any) -> None:
            with self.lock:
                self.outcomes[(queue, event)] += 1
                self.runtime[queue] += runtime

        def dispatched(**_: Any) -> None:
            with self.lock:
                self.dispatched += 1

        for event in ("job_succeeded", "job_failed", "job_released"):
            demo.app.on(event, count)
        demo.app.on("job_dispatched", dispatched)

    def total(self, event: str) -> int:
        return sum(n for (_q, e), n in self.outcomes.items() if e == event)


def burst(demo: DemoApp, facts: StoreFacts, fcm: FcmServer | None, stamp: str
          ) -> list[PreparedJob]:
    """Everything a busy GroFresh evening dispatches at once."""
    jobs: list[PreparedJob] = []
    with demo.connect() as conn:
        recent = conn.execute(
            "SELECT o.id, o.total, c.id, c.name, c.email, b.name FROM orders o "
            "JOIN customers c ON c.id = o.customer_id JOIN branches b ON b.id = o.branch_id "
            "WHERE o.id > (SELECT MAX(id) FROM orders) - ? "
            "OR o.id = (SELECT MAX(id) FROM orders WHERE customer_id = ?) ORDER BY o.id DESC",
            (CONFIRMATIONS, INVALID_EMAIL_CUSTOMER)).fetchall()
        for order_id, total, _cid, name, address, branch in recent:
            jobs.append(demo.mail.prepare(Mailable(
                subject="Your GroFresh order #{{ order_id }} is confirmed", to=[address],
                text=ORDER_TEXT, html=ORDER_HTML,
                context={"name": name, "order_id": order_id, "total": total,
                         "branch": branch}), type="order_confirmation"))
        tokens_of: dict[int, list[str]] = {}
        for token, customer in conn.execute("SELECT token, customer_id FROM fcm_tokens"):
            tokens_of.setdefault(customer, []).append(token)
        for order_id, customer in conn.execute(
                "SELECT id, customer_id FROM orders WHERE status = 'out_for_delivery'"):
            if tokens_of.get(customer):
                jobs.append(demo.push.prepare(
                    {"title": "Your groceries are on their way",
                     "body": f"Order #{order_id} arrives in about 20 minutes",
                     "data": {"order_id": order_id}}, tokens_of[customer],
                    type="delivery_alert"))
        everyone = [t for tokens in tokens_of.values() for t in tokens]
        jobs.append(demo.push.prepare({"title": "Weekend deals", "body": "20% off fruit"},
                                      everyone, type="marketing"))
        picks = [n for (n,) in conn.execute("SELECT name FROM products ORDER BY stock DESC "
                                            "LIMIT 3")]
        for name, address, branch in conn.execute(
                "SELECT c.name, c.email, b.name FROM customers c JOIN branches b "
                "ON b.id = c.branch_id WHERE c.newsletter = 1 AND c.id != ? ORDER BY c.id",
                (INVALID_EMAIL_CUSTOMER,)):
            jobs.append(demo.mail.prepare(Mailable(
                subject="Fresh this week at {{ branch }}", to=[address], text=NEWSLETTER_TEXT,
                html=NEWSLETTER_HTML, context={"name": name, "branch": branch,
                                               "picks": picks}), type="newsletter"))
        prices = conn.execute("SELECT id, price FROM products ORDER BY id").fetchall()
    if fcm is not None:
        for token in facts.unregistered:
            fcm.unregistered.add(token)
        fcm.fail_next(everyone[3], 429, retry_after=1)  # FCM throttles one send
    period = today_range(facts.today, DAYS)
    jobs.append(demo.reports.job.prepare("sales", {**period, "branch_id": None}, REQUESTER,
                                         None))
    rows = [{"id": pid, "price": round(price * 1.05, 2), "updated_at": stamp}
            for pid, price in prices]
    rows[BAD_PRODUCT - 1]["price"] = -3.10
    size = len(rows) // PRICE_JOBS
    for part in range(PRICE_JOBS):
        jobs.append(demo.data.job.prepare(
            "bulk_product_update", rows[part * size:(part + 1) * size],
            {"batch_size": PRICE_BATCH, "on_batch_error": "fail"}))
    jobs.append(demo.data.job.prepare("warm_cache", None, {"ttl": 3600}))
    jobs.append(demo.data.job.prepare("calculate_analytics", period, {}))
    return jobs


def drain(demo: DemoApp, concurrency: int, deadline: float) -> None:
    """Burst-mode workers until nothing is waiting; follow-ups scheduled a moment later
    (a re-send after Retry-After) are waited for, up to ``deadline``."""
    app = demo.app
    queues = list(QUEUE_ORDER)
    rounds = 0
    while True:
        rounds += 1
        options = WorkerOptions(queues=queues, concurrency=concurrency, sleep=0.05,
                                stop_when_empty=True, name=f"demo-worker-{rounds}",
                                defaults=WorkerDefaults(timeout=120.0))
        Worker(app, options).run()
        while time.monotonic() < deadline:
            stats = app.backend.queue_stats(app.clock())
            if not any(s.scheduled or s.available for s in stats):
                return
            if any(s.available for s in stats):
                break
            time.sleep(0.05)  # a follow-up is scheduled a moment from now
        else:
            return


def summary(demo: DemoApp, facts: StoreFacts, fcm: FcmServer | None, tally: Tally,
            stamp: str, seconds: float) -> dict[str, Any]:
    """What happened, read back from the stores (queue, shop, files), not from memory."""
    app = demo.app
    failed = app.backend.failed_list(limit=1000)
    with demo.connect() as conn:
        updated = conn.execute("SELECT COUNT(*) FROM products WHERE updated_at = ?",
                               (stamp,)).fetchone()[0]
        tokens_left = conn.execute("SELECT COUNT(*) FROM fcm_tokens").fetchone()[0]
        analytics = conn.execute("SELECT COUNT(*), COALESCE(SUM(orders), 0) "
                                 "FROM daily_sales").fetchone()
    reports_dir = demo.directory / "reports"
    report_files = sorted(p.name for p in reports_dir.glob("*.csv")) if reports_dir.exists() \
        else []
    mail_dir = demo.directory / "mail"
    stats = app.backend.queue_stats(app.clock())
    return {
        "directory": str(demo.directory),
        "store": app.display_url,
        "seconds": round(seconds, 2),
        "dispatched": tally.dispatched,
        "processed": tally.total("job_succeeded"),
        "failed": len(failed),
        "retried": tally.total("job_released"),
        "waiting": sum(s.available + s.scheduled + s.running for s in stats),
        "failed_jobs": [{"id": r.id, "queue": r.queue, "job": r.name, "reason": r.summary}
                        for r in failed],
        "emails_written": len(list(mail_dir.glob("*.eml"))) if mail_dir.exists() else None,
        "push_delivered": fcm.delivered() if fcm is not None else None,
        "push_throttled": sum(1 for m in fcm.received if m.status == 429) if fcm else None,
        "tokens_removed": facts.tokens - tokens_left,
        "products_updated": updated,
        "products_total": facts.products,
        "reports": report_files,
        "analytics_rows": analytics[0],
        "analytics_orders": analytics[1],
        "orders_in_period": facts.orders,
        "today": facts.today.isoformat(),
    }


def run_stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
