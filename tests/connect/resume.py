#!/usr/bin/env python3
"""An open notebook across an idle stop, through the real pyspark-client.

Usage:
    python resume.py URL [--no-artifacts] [--no-sql-set]

Connects once with SparkSession.builder.remote(URL).getOrCreate() and, like a notebook's first
cells, sets a conf, adds an artifact (a .py module) that a UDF imports, and creates a temp view;
then, through SQL and the UDF registry, it creates a second view, registers a function, sets a
second conf, and creates and drops a third view. It then prints `{"phase": "set"}` and waits
for a line on stdin: the test stops the session for idleness meanwhile. Then, in the same
client, like the next cell, it reads the temp views, uses the UDFs, reads the confs and finds
the dropped view still gone. Each of those prints one JSON line, and `{"phase": "done"}` ends:

    {"check": NAME, "ok": true|false, "detail": ...}

A check that raises reports the exception's class and message (an error naming what was lost
is what the test looks for when something could not come back). Exit status: 0 iff every check
passed.

`--no-artifacts` is for servers without AddArtifacts (Sail): the UDF is then defined inline
instead of importing an uploaded module. `--no-sql-set` is for servers whose SQL `SET` takes no
Spark conf (Sail hands it to DataFusion): the SQL-set conf is then neither set nor checked.

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
SQL_VIEW = "sk8_sql_view"
FUNCTION = "sk8_plus_one"
SQL_CONF_KEY = "spark.sk8.test.sqlset"
SQL_CONF_VALUE = "42"  # a literal every server takes unquoted (Sail's SET wants one)
DROPPED = "sk8_dropped"


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


def plus_one(x):
    return x + 1


def first_cells(spark, artifacts, sql_set):
    spark.conf.set(CONF_KEY, CONF_VALUE)
    if artifacts:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, MODULE + ".py")
            with open(path, "w") as module:
                module.write("def triple(x):\n    return 3 * x\n")
            spark.addArtifacts(path, pyfile=True)
    spark.range(10).filter("id % 2 = 0").createOrReplaceTempView(VIEW)
    spark.sql(f"CREATE OR REPLACE TEMP VIEW {SQL_VIEW} AS SELECT id FROM {VIEW} WHERE id > 4")
    spark.udf.register(FUNCTION, plus_one, LongType())
    if sql_set:
        spark.sql(f"SET {SQL_CONF_KEY}={SQL_CONF_VALUE}")
    spark.sql(f"CREATE TEMP VIEW {DROPPED} AS SELECT 1 AS one")
    spark.sql(f"DROP VIEW {DROPPED}")
    # Everything works before the stop.
    tripled = F.udf(call_module if artifacts else call_inline, LongType())
    rows = spark.table(VIEW).select(tripled("id").alias("y")).collect()
    return sorted(r.y for r in rows)


def main():
    flags = sys.argv[2:]
    if len(sys.argv) < 2 or not set(flags) <= {"--no-artifacts", "--no-sql-set"}:
        print(__doc__, file=sys.stderr)
        return 2
    artifacts = "--no-artifacts" not in flags
    sql_set = "--no-sql-set" not in flags
    spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
    before = first_cells(spark, artifacts, sql_set)
    print(json.dumps({"phase": "set", "values": before}), flush=True)
    sys.stdin.readline()
    results = [
        report("temp_view", lambda: (lambda n: (n == 5, {"count": n}))(spark.table(VIEW).count())),
        report("udf", lambda: udf_values(spark, artifacts)),
        report("conf", lambda: (lambda v: (v == CONF_VALUE, {"value": v}))(spark.conf.get(CONF_KEY))),
        report("sql_view", lambda: (lambda n: (n == 2, {"count": n}))(spark.table(SQL_VIEW).count())),
        report("registered_udf", lambda: registered(spark)),
        report("dropped_view", lambda: still_dropped(spark)),
    ]
    if sql_set:
        results.append(report("sql_conf", lambda: sql_conf(spark)))
    print(json.dumps({"phase": "done"}), flush=True)
    return 0 if all(results) else 1


def sql_conf(spark):
    value = spark.conf.get(SQL_CONF_KEY)
    return value == SQL_CONF_VALUE, {"value": value}


def registered(spark):
    value = spark.sql(f"SELECT {FUNCTION}(41) AS v").first().v
    return value == 42, {"value": value}


def still_dropped(spark):
    # The view made and dropped before the stop must not come back with the rest.
    try:
        rows = spark.table(DROPPED).collect()
    except Exception as exc:  # the server's "not found", whichever class the client maps it to
        found = "not found" in str(exc).lower() or "TABLE_OR_VIEW_NOT_FOUND" in str(exc)
        return found, {"error": type(exc).__name__}
    return False, {"rows": len(rows)}


def udf_values(spark, artifacts):
    tripled = F.udf(call_module if artifacts else call_inline, LongType())
    got = sorted(r.y for r in spark.range(4).select(tripled("id").alias("y")).collect())
    return got == [0, 3, 6, 9], {"values": got}


if __name__ == "__main__":
    sys.exit(main())
