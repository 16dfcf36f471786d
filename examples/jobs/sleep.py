"""A job that keeps Spark busy for a while (default 600 s): for trying `sk8 cancel`."""

import sys
import time

from pyspark.sql import SparkSession

seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 600
spark = SparkSession.builder.appName("sk8-sleep").getOrCreate()
print(f"sleeping {seconds}s; cancel me with `sk8 cancel <id>`", flush=True)
spark.range(1).count()
time.sleep(seconds)
spark.stop()
