#!/usr/bin/env python3
"""An open notebook across an idle stop, through the real pyspark-client.

Usage:
    python resume.py URL [--no-artifacts]

Connects once with SparkSession.builder.remote(URL).getOrCreate() and, like a notebook's first
cells, sets a conf, adds an artifact (a .py module) that a UDF imports, and creates a temp view.
It then prints `{"phase": "set"}` and waits for a line on stdin: the test stops the session
for idleness meanwhile. Then, in the same client, like the next cell, it reads the temp view,
uses the UDF and reads the conf. Each of those prints one JSON line:

    {"check": NAME, "ok": true|false, "detail": ...}

A check that raises reports the exception's class and message (an error naming what was lost
is what the test looks for when something could not come back). Exit status: 0 iff every check
passed.

`--no-artifacts` is for servers without AddArtifacts (Sail): the UDF is then defined inline
instead of importing an uploaded module.

Needs pyspark-client (Spark Connect only), pandas and pyarrow. Run it as a file, never through
`python -c`.
"""
import json
import os
import sys
import tempfile

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType

CONF_KEY = "spark.sk8.test.marker"
CONF_VALUE = "kept-across-idle-stop"
VIEW = "sk8_numbers"
MODULE = "sk8_resume_triple"  # unusual name, so only the uploaded file can satisfy the import


def call_module(x):
    # Runs on the server: the import succeeds only if the artifact is there.
    import sk8_resume_triple

    return sk8_resume_triple.triple(x)


def report(name, run):
    try:
        ok, detail = run()
    except Exception as exc:
        ok, detail = False, {"error": type(exc).__name__, "message": str(exc).strip()[:2000]}
    print(json.dumps({"check": name, "ok": ok, "detail": detail}), flush=True)
    return ok


def call_inline(x):
    return 3 * x


def first_cells(spark, artifacts):
    spark.conf.set(CONF_KEY, CONF_VALUE)
    if artifacts:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, MODULE + ".py")
            with open(path, "w") as module:
                module.write("def triple(x):\n    return 3 * x\n")
            spark.addArtifacts(path, pyfile=True)
    spark.range(10).filter("id % 2 = 0").createOrReplaceTempView(VIEW)
    # Everything works before the stop.
    tripled = F.udf(call_module if artifacts else call_inline, LongType())
    rows = spark.table(VIEW).select(tripled("id").alias("y")).collect()
    return sorted(r.y for r in rows)


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[2:] not in ([], ["--no-artifacts"]):
        print(__doc__, file=sys.stderr)
        return 2
    artifacts = sys.argv[2:] == []
    spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
    before = first_cells(spark, artifacts)
    print(json.dumps({"phase": "set", "values": before}), flush=True)
    sys.stdin.readline()
    results = [
        report("temp_view", lambda: (lambda n: (n == 5, {"count": n}))(spark.table(VIEW).count())),
        report("udf", lambda: udf_values(spark, artifacts)),
        report("conf", lambda: (lambda v: (v == CONF_VALUE, {"value": v}))(spark.conf.get(CONF_KEY))),
    ]
    return 0 if all(results) else 1


def udf_values(spark, artifacts):
    tripled = F.udf(call_module if artifacts else call_inline, LongType())
    got = sorted(r.y for r in spark.range(4).select(tripled("id").alias("y")).collect())
    return got == [0, 3, 6, 9], {"values": got}


if __name__ == "__main__":
    sys.exit(main())
