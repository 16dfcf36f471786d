"""Spark Connect through sk8: DataFrame and SQL work on a session's server.

    python examples/notebook.py 'sc://127.0.0.1:15002/;x-sk8-session=<id>'

Create the session first (README, "A notebook session"); its `connectionString` is the
argument. Needs the Spark Connect client:
`pip install 'pyspark-client==4.2.0' pandas pyarrow` (or the venv scripts/setup-connect.sh makes).
"""
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main(url):
    spark = SparkSession.builder.remote(url).getOrCreate()
    orders = spark.createDataFrame(
        [(1, "eu", 120.0), (2, "us", 80.5), (3, "eu", 42.0), (4, "apac", 99.9)],
        ["order_id", "region", "amount"],
    )
    orders.createOrReplaceTempView("orders")
    by_region = orders.groupBy("region").agg(F.sum("amount").alias("revenue")).orderBy("region")
    by_region.show()
    spark.sql(
        "SELECT region, count(*) AS n FROM orders WHERE amount > 50 GROUP BY region ORDER BY n DESC"
    ).show()
    print("rows in a generated range:", spark.range(1_000_000).filter("id % 7 = 0").count())
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sc://127.0.0.1:15002")
