"""The batch half of the feature pipeline: daily order features for one day, written as
Parquet to OUTPUT/day=DAY.

Usage: spark-submit features_job.py OUTPUT DAY
"""

import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main() -> None:
    output, day = sys.argv[1], sys.argv[2]
    spark = SparkSession.builder.appName("sk8-features").getOrCreate()
    orders = spark.range(0, 10_000).select(
        (F.col("id") % 100).alias("customer_id"),
        ((F.col("id") * 7919) % 1000 / 10.0).alias("amount"),
    )
    features = orders.groupBy("customer_id").agg(
        F.count("*").alias("orders"), F.round(F.sum("amount"), 2).alias("revenue")
    )
    features.write.mode("overwrite").parquet(f"{output}/day={day}")
    print(f"wrote {features.count()} feature rows for {day}")
    spark.stop()


if __name__ == "__main__":
    main()
