"""The code under test: a feature transformation a team ships (plain PySpark DataFrame code)."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def customer_features(orders: DataFrame) -> DataFrame:
    """Per customer: number of orders, revenue, and whether they are a repeat buyer."""
    return (
        orders.groupBy("customer_id")
        .agg(F.count("*").alias("orders"), F.round(F.sum("amount"), 2).alias("revenue"))
        .withColumn("repeat_buyer", F.col("orders") > 1)
    )
