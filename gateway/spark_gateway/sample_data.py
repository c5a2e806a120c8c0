"""Sample tables for new users: temp views ``consumers`` and ``sales`` in every new session.

Installed by the gateway when it runs with ``--sample-data``. The rows are generated
here, deterministically (a fixed seed), and sent to Spark as two local relations, so
installing them takes two small RPCs and no files.

    consumers(id int, name string, age int, city string, email string, signup_date date)
    sales(id int, consumer_id int, product string, amount decimal(10,2), quantity int,
          sale_date date)
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from functools import cache
from typing import Any

TABLES = ("consumers", "sales")  # the temp views install() creates
CONSUMERS = 200
SALES = 1000
SEED = 20240101

_FIRST = ("Ada", "Alan", "Barbara", "Brian", "Carla", "Dennis", "Edsger", "Frances", "Grace", "Guido",
          "Hedy", "Ivan", "Joan", "Ken", "Linus", "Margaret", "Niklaus", "Ole", "Radia", "Tim")
_LAST = ("Lovelace", "Turing", "Liskov", "Kernighan", "Hopper", "Ritchie", "Dijkstra", "Allen",
         "Rossum", "Lamarr", "Sutherland", "Clarke", "Thompson", "Torvalds", "Hamilton", "Wirth",
         "Dahl", "Perlman", "Berners-Lee", "Goldberg")
_CITIES = ("Amsterdam", "Berlin", "Lisbon", "London", "Madrid", "Paris", "Prague", "Rome",
           "Stockholm", "Vienna", "Warsaw", "Zurich")
# product, unit price
_PRODUCTS = (("Laptop", "1199.00"), ("Monitor", "249.90"), ("Keyboard", "79.50"), ("Mouse", "24.99"),
             ("Headphones", "149.00"), ("Webcam", "69.95"), ("Desk lamp", "39.90"), ("Chair", "329.00"),
             ("USB-C hub", "45.00"), ("Notebook", "4.50"))


@cache
def rows() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The (consumers, sales) rows; identical on every call and every machine."""
    rng = random.Random(SEED)
    start = dt.date(2022, 1, 1)
    consumers = []
    for cid in range(1, CONSUMERS + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        name = f"{first} {last}"
        email = f"{first.lower()}.{last.lower().replace('-', '')}{cid}@example.com"
        signup = start + dt.timedelta(days=rng.randrange(730))
        consumers.append((cid, name, rng.randint(18, 80), rng.choice(_CITIES), email, signup))
    sales = []
    for sid in range(1, SALES + 1):
        consumer = rng.choice(consumers)
        product, price = rng.choice(_PRODUCTS)
        quantity = rng.choices((1, 2, 3, 4, 5), weights=(60, 20, 10, 6, 4))[0]
        discount = rng.choice((Decimal("1.00"), Decimal("1.00"), Decimal("0.90"), Decimal("0.85")))
        amount = (Decimal(price) * quantity * discount).quantize(Decimal("0.01"))
        sale_date = consumer[5] + dt.timedelta(days=rng.randrange(365))
        sales.append((sid, consumer[0], product, amount, quantity, sale_date))
    return consumers, sales


def install(spark: Any) -> None:
    """Create (or replace) the temp views ``consumers`` and ``sales`` in ``spark``."""
    from pyspark.sql.types import (
        DateType,
        DecimalType,
        IntegerType,
        StringType,
        StructField,
        StructType,
    )

    consumers, sales = rows()
    consumer_schema = StructType([
        StructField("id", IntegerType(), False),
        StructField("name", StringType(), False),
        StructField("age", IntegerType(), False),
        StructField("city", StringType(), False),
        StructField("email", StringType(), False),
        StructField("signup_date", DateType(), False),
    ])
    sales_schema = StructType([
        StructField("id", IntegerType(), False),
        StructField("consumer_id", IntegerType(), False),
        StructField("product", StringType(), False),
        StructField("amount", DecimalType(10, 2), False),
        StructField("quantity", IntegerType(), False),
        StructField("sale_date", DateType(), False),
    ])
    spark.createDataFrame(consumers, consumer_schema).createOrReplaceTempView("consumers")
    spark.createDataFrame(sales, sales_schema).createOrReplaceTempView("sales")
