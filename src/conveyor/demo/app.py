"""The demo's conveyor app: the four built-in jobs installed on one app, wired to the
sample store (reports, data operations, the invalid-token cleanup hook)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..app import Conveyor
from ..builtin import data, email, notifications, reports
from ..builtin.cache import Cache, cache_url_from_env, open_cache
from ..builtin.config import FcmSettings, MailSettings
from .store import connect

ORDER_TEXT = """Hello {{ name }},

thank you for your order #{{ order_id }} at {{ branch }}.
Total: {{ "%.2f"|format(total) }} BDT. We will tell you when it is on its way.

GroFresh
"""
ORDER_HTML = """<h1>Thank you, {{ name }}!</h1>
<p>Your order <b>#{{ order_id }}</b> at {{ branch }} is confirmed.</p>
<p>Total: <b>{{ "%.2f"|format(total) }} BDT</b></p>"""
NEWSLETTER_TEXT = """Hi {{ name }},

this week at {{ branch }}: {{ picks|join(", ") }}.
"""
NEWSLETTER_HTML = """<h2>Fresh this week at {{ branch }}</h2>
<ul>{% for p in picks %}<li>{{ p }}</li>{% endfor %}</ul>"""

REPORT_FILTER = ("date(o.created_at) BETWEEN :start_date AND :end_date "
                 "AND (:branch_id IS NULL OR o.branch_id = :branch_id)")
REPORTS = {
    "sales": (f"SELECT date(o.created_at) AS day, b.name AS branch, COUNT(*) AS orders, "  # noqa: S608 - constant SQL
              f"ROUND(SUM(o.total), 2) AS revenue FROM orders o JOIN branches b "
              f"ON b.id = o.branch_id WHERE {REPORT_FILTER} GROUP BY day, b.name "
              f"ORDER BY day, b.name", None),
    "orders": (f"SELECT o.id AS order_id, o.created_at, b.name AS branch, c.name AS customer, "  # noqa: S608 - constant SQL
               f"o.status, o.total FROM orders o JOIN branches b ON b.id = o.branch_id "
               f"JOIN customers c ON c.id = o.customer_id WHERE {REPORT_FILTER} ORDER BY o.id",
               f"SELECT COUNT(*) FROM orders o WHERE {REPORT_FILTER}"),  # noqa: S608 - constant SQL
    "products": ("SELECT id, name, category, price, stock FROM products "
                 "WHERE :branch_id IS NULL OR branch_id = :branch_id ORDER BY id",
                 "SELECT COUNT(*) FROM products "
                 "WHERE :branch_id IS NULL OR branch_id = :branch_id"),
    "customers": ("SELECT c.id, c.name, c.email, b.name AS branch, c.newsletter FROM customers c "
                  "JOIN branches b ON b.id = c.branch_id "
                  "WHERE :branch_id IS NULL OR c.branch_id = :branch_id ORDER BY c.id", None),
}
ANALYTICS = [
    "DELETE FROM daily_sales WHERE day BETWEEN :start_date AND :end_date",
    "INSERT INTO daily_sales (day, branch_id, orders, revenue) "
    "SELECT date(created_at), branch_id, COUNT(*), ROUND(SUM(total), 2) FROM orders "
    "WHERE date(created_at) BETWEEN :start_date AND :end_date "
    "GROUP BY date(created_at), branch_id",
]


@dataclass
class DemoApp:
    app: Conveyor
    directory: Path
    shop: Path
    mail: email.EmailService
    push: notifications.NotificationService
    reports: reports.ReportService
    data: data.DataService
    removed_tokens: list[str] = field(default_factory=list)
    caches: list[Cache] = field(default_factory=list)

    def connect(self) -> sqlite3.Connection:
        return connect(self.shop)

    def close(self) -> None:
        self.push.close()
        for cache in self.caches:
            cache.close()
        self.app.close()


def build_app(directory: Path, env: Mapping[str, str], fcm_env: Mapping[str, str] | None
              ) -> DemoApp:
    """The demo app on ``directory``. Mail goes to ``directory/mail`` (.eml files) unless
    ``MAIL_MAILER`` is set; push goes to ``fcm_env`` (the loopback server) unless
    ``FCM_CREDENTIALS``/``FCM_CREDENTIALS_JSON`` are set."""
    app = Conveyor(f"sqlite:///{directory / 'queue.db'}", directory=directory)
    mail_settings = MailSettings.from_env(env)
    if not env.get("MAIL_MAILER"):
        mail_settings = replace(mail_settings, mailer="file", file_path=directory / "mail")
    if not env.get("MAIL_FROM_ADDRESS"):
        mail_settings = replace(mail_settings, from_address="orders@grofresh.test",
                                from_name="GroFresh")
    real_fcm = any(env.get(k) for k in ("FCM_CREDENTIALS", "FCM_CREDENTIALS_JSON"))
    fcm_settings = FcmSettings.from_env(env if real_fcm or fcm_env is None else fcm_env)
    shop = directory / "shop.db"
    demo = DemoApp(
        app=app, directory=directory, shop=shop,
        mail=email.install(app, settings=mail_settings),
        push=notifications.install(app, settings=replace(fcm_settings, retry_base=1.0)),
        reports=reports.install(app, directory=directory / "reports"),
        data=data.install(app),
    )
    demo.push.on_invalid_tokens(lambda tokens: _remove_tokens(demo, tokens))
    for name, (query, count) in REPORTS.items():
        demo.reports.register(name, reports.sql_report(demo.connect, query, count_query=count),
                              params=dict.fromkeys(("start_date", "end_date", "branch_id")))
    cache_url = cache_url_from_env(env, directory / "cache.db")

    def cache() -> Cache:
        if not demo.caches:
            demo.caches.append(open_cache(cache_url))
        return demo.caches[0]

    demo.data.register("bulk_product_update", data.bulk_update(
        demo.connect, "products", columns=("price", "stock", "updated_at")))
    demo.data.register("warm_cache", data.warm_cache(cache, {
        "top_products": lambda: _top_products(demo),
        "category_prices": lambda: _category_prices(demo),
    }))
    demo.data.register("calculate_analytics", data.rebuild(
        demo.connect, ANALYTICS,
        count_query="SELECT COUNT(*) FROM daily_sales WHERE day BETWEEN :start_date "
                    "AND :end_date"))
    return demo


def _remove_tokens(demo: DemoApp, tokens: list[str]) -> None:
    with demo.connect() as conn:
        conn.executemany("DELETE FROM fcm_tokens WHERE token = ?", [(t,) for t in tokens])
    demo.removed_tokens.extend(tokens)


def _top_products(demo: DemoApp) -> dict[str, Any]:
    with demo.connect() as conn:
        branches = [b for (b,) in conn.execute("SELECT id FROM branches")]
        return {f"branch:{b}:top_products": [
            {"id": i, "name": n, "price": p} for i, n, p in conn.execute(
                "SELECT id, name, price FROM products WHERE branch_id = ? "
                "ORDER BY stock DESC, id LIMIT 20", (b,))] for b in branches}


def _category_prices(demo: DemoApp) -> dict[str, Any]:
    with demo.connect() as conn:
        return {f"category:{c}:avg_price": round(avg, 2) for c, avg in conn.execute(
            "SELECT category, AVG(price) FROM products GROUP BY category")}


def today_range(today: dt.date, days: int) -> dict[str, str]:
    return {"start_date": (today - dt.timedelta(days=days - 1)).isoformat(),
            "end_date": today.isoformat()}
