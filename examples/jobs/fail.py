"""A job that fails on purpose, to show how a failure reaches `sk8 status`."""

from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("sk8-fail").getOrCreate()
rows = spark.range(10).count()
raise ValueError(f"input check failed: expected 11 rows, found {rows}")
