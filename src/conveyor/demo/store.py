"""The GroFresh sample store: branches, products, customers with FCM tokens, orders, in
one SQLite file. Deterministic (seeded), so every run plays the same story."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE branches (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);
CREATE TABLE products (
    id INTEGER PRIMARY KEY, branch_id INTEGER NOT NULL REFERENCES branches(id),
    name TEXT NOT NULL, category TEXT NOT NULL,
    price REAL NOT NULL CHECK (price >= 0), stock INTEGER NOT NULL CHECK (stock >= 0),
    updated_at TEXT);
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,
    branch_id INTEGER NOT NULL REFERENCES branches(id), newsletter INTEGER NOT NULL);
CREATE TABLE fcm_tokens (
    token TEXT PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id));
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
    branch_id INTEGER NOT NULL REFERENCES branches(id), status TEXT NOT NULL,
    total REAL NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX orders_created ON orders (created_at);
CREATE TABLE daily_sales (
    day TEXT NOT NULL, branch_id INTEGER NOT NULL, orders INTEGER NOT NULL,
    revenue REAL NOT NULL, PRIMARY KEY (day, branch_id));
"""

BRANCHES = [("GroFresh Central", "Dhaka"), ("GroFresh Riverside", "Chattogram"),
            ("GroFresh Hillview", "Sylhet"), ("GroFresh Harbour", "Khulna"),
            ("GroFresh Market Square", "Rajshahi")]
CATEGORIES = ["Fruit", "Vegetables", "Dairy", "Bakery", "Meat", "Fish", "Pantry", "Drinks",
              "Frozen", "Household"]
ITEMS = ["Apples", "Bananas", "Tomatoes", "Potatoes", "Milk", "Yoghurt", "Bread", "Rice",
         "Lentils", "Chicken", "Hilsa", "Tea", "Coffee", "Juice", "Ice cream", "Soap"]
FIRST = ["Ayesha", "Rahim", "Nadia", "Karim", "Fatima", "Tanvir", "Sadia", "Imran", "Lina",
         "Omar", "Priya", "Zara", "Hasan", "Mitu", "Arif", "Nusrat"]
LAST = ["Rahman", "Hossain", "Islam", "Ahmed", "Chowdhury", "Khan", "Das", "Sarker"]

PRODUCTS = 20_000
CUSTOMERS = 400
ORDERS = 4_000
DAYS = 30
INVALID_EMAIL_CUSTOMER = 7  # deliberately broken address: its emails fail, not retried
UNREGISTERED_EVERY = 40  # every 40th token was uninstalled: FCM answers UNREGISTERED


@dataclass(frozen=True, slots=True)
class StoreFacts:
    path: Path
    today: dt.date
    branches: int
    products: int
    customers: int
    tokens: int
    unregistered: list[str]
    orders: int


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def create_store(path: Path, today: dt.date | None = None) -> StoreFacts:
    today = today or dt.date.today()
    rng = random.Random(2026)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO branches (id, name, city) VALUES (?, ?, ?)",
                         [(i, n, c) for i, (n, c) in enumerate(BRANCHES, 1)])
        conn.executemany(
            "INSERT INTO products (id, branch_id, name, category, price, stock) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            ((i, 1 + i % len(BRANCHES), f"{rng.choice(ITEMS)} #{i}", CATEGORIES[i % 10],
              round(rng.uniform(0.5, 40.0), 2), rng.randint(0, 500))
             for i in range(1, PRODUCTS + 1)))
        customers = []
        for i in range(1, CUSTOMERS + 1):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = f"{first}.{last}{i}@customers.grofresh.test".lower()
            if i == INVALID_EMAIL_CUSTOMER:
                email = f"{first}.{last}@@grofresh"  # a typo at sign-up
            customers.append((i, f"{first} {last}", email, 1 + i % len(BRANCHES),
                              int(i % 3 != 0)))
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", customers)
        tokens = [(f"fcm-{i:04d}-{rng.getrandbits(48):012x}", 1 + i % CUSTOMERS)
                  for i in range(CUSTOMERS * 3 // 2)]
        conn.executemany("INSERT INTO fcm_tokens VALUES (?, ?)", tokens)
        start = dt.datetime.combine(today - dt.timedelta(days=DAYS - 1), dt.time(7))
        orders = []
        for i in range(1, ORDERS + 1):
            # evenly from the first day 07:00 to today 22:00: none in the future
            created = start + dt.timedelta(minutes=int((i - 1) * (DAYS * 24 - 9) * 60 / ORDERS))
            customer = rng.randint(1, CUSTOMERS)
            status = "delivered" if i <= ORDERS - 200 else rng.choice(
                ["confirmed", "out_for_delivery"])
            orders.append((i, customer, 1 + customer % len(BRANCHES), status,
                           round(rng.uniform(5, 150), 2), created.isoformat(sep=" ")))
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", orders)
        conn.commit()
    finally:
        conn.close()
    return StoreFacts(path, today, len(BRANCHES), PRODUCTS, CUSTOMERS, len(tokens),
                      [t for i, (t, _c) in enumerate(tokens) if i % UNREGISTERED_EVERY == 5],
                      ORDERS)
