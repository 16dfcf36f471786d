"""Estimate pi by sampling points in the unit square: sk8's sample batch job.

Usage: spark-submit pi.py [PARTITIONS] [SAMPLES_PER_PARTITION]
"""

import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main() -> None:
    partitions = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    per_partition = int(sys.argv[2]) if len(sys.argv) > 2 else 250_000
    spark = SparkSession.builder.appName("sk8-pi").getOrCreate()
    total = partitions * per_partition
    # rand() with a seed is deterministic per partition, so reruns print the same estimate.
    points = spark.range(0, total, numPartitions=partitions).select(
        F.rand(seed=7).alias("x"), F.rand(seed=11).alias("y")
    )
    inside = points.where(F.col("x") ** 2 + F.col("y") ** 2 <= 1.0).count()
    print(f"pi is roughly {4.0 * inside / total:.5f} ({total} samples)")
    spark.stop()


if __name__ == "__main__":
    main()
