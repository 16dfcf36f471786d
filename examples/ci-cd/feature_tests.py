"""Feature tests that need Spark but no cluster and no containers: `sk8_spark` (from
`sk8.testing`, a pytest plugin the sk8 package registers) starts a throwaway local sk8 with a
Sail session once per test run and yields a SparkSession on it.

    SK8_BIN=path/to/sk8 pytest examples/ci-cd/feature_tests.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from features import customer_features  # noqa: E402


def test_revenue_and_order_counts_per_customer(sk8_spark):
    orders = sk8_spark.createDataFrame(
        [(1, 10.0), (1, 5.5), (2, 3.0)], ["customer_id", "amount"]
    )
    rows = {r.customer_id: r for r in customer_features(orders).collect()}
    assert rows[1].orders == 2 and rows[1].revenue == 15.5 and rows[1].repeat_buyer
    assert rows[2].orders == 1 and not rows[2].repeat_buyer


def test_no_orders_no_features(sk8_spark):
    empty = sk8_spark.createDataFrame([], "customer_id INT, amount DOUBLE")
    assert customer_features(empty).count() == 0


def test_the_session_is_an_sk8_session(sk8_local, sk8_spark):
    _, page = sk8_local.client.request("GET", "/v1/sessions")
    assert [s["state"] for s in page["sessions"]] == ["READY"]
