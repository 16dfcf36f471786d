#!/usr/bin/env python3
"""Spark Connect end-to-end checks, run through the real pyspark-client.

Usage:
    python checks.py URL CHECK [CHECK...]
    python checks.py 'sc://127.0.0.1:15002/;x-sk8-session=abc' range_count sql whoami
    python checks.py sc://127.0.0.1:15002 all

Connects once with SparkSession.builder.remote(URL).getOrCreate() and runs the named checks in
order, all in that one session. Each check prints exactly one JSON line to stdout:

    {"check": NAME, "ok": true|false, "detail": ...}

A check that raises is reported as ok=false with the exception's class and message, and the
remaining checks still run. Exit status: 0 iff every requested check passed, 1 if any failed,
2 for a usage error such as an unknown check name. `all` stands for every check.

`interrupt` needs the server's Spark UI in SK8_CHECKS_SPARK_UI (e.g. http://127.0.0.1:4040): it
interrupts the endless query only once the UI shows its Spark job running, since an interrupt
that lands before the job is submitted does not stop it (Apache Spark servers only; Sail has
no UI).

Needs pyspark-client (Spark Connect only), pandas and pyarrow. Run it as a file, never through
`python -c`: pyspark-client then takes the run for a doctest and exits asking for SPARK_HOME.
"""
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.request

import pandas as pd
import pyarrow.compute as pc
from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType

MILLION = 1_000_000
SPARK_UI_ENV = "SK8_CHECKS_SPARK_UI"
RUNNING_WAIT_S = 120  # how long the endless query may take to have a running Spark job
INTERRUPT_GRACE_S = 10  # how long the interrupted query may take to end
FOLLOW_UP_S = 120  # how long the query after the interrupt may take (a loaded machine)
ARTIFACT_MODULE = "sk8_artifact_double"  # unusual name, so only the uploaded file can satisfy it


class CheckFailed(Exception):
    """A check's own expectation failed; its argument is the detail to report."""


def expect(condition, detail):
    if not condition:
        raise CheckFailed(detail)


def describe_error(exc):
    """Class and message of an exception, short enough for one JSON line."""
    return {"error": type(exc).__name__, "message": str(exc).strip()[:1000]}


def first_line(text):
    return (text.strip().splitlines() or [""])[0]


# Each check takes the session and returns a JSON-serialisable detail, or raises.

def check_range_count(spark):
    count = spark.range(1000).count()
    expect(count == 1000, {"count": count})
    return {"count": count}


def check_sql(spark):
    spark.createDataFrame(
        [(1, "ana", 10, 100), (2, "bo", 10, 250), (3, "cy", 20, 75), (4, "di", 30, 40),
         (5, "ed", 20, 125)],
        "id INT, name STRING, dept_id INT, salary INT",
    ).createOrReplaceTempView("sk8_people")
    spark.createDataFrame(
        [(10, "eng"), (20, "ops"), (40, "empty")], "id INT, name STRING"
    ).createOrReplaceTempView("sk8_depts")
    rows = spark.sql(
        "SELECT d.name AS dept, count(*) AS n, sum(p.salary) AS total "
        "FROM sk8_people p JOIN sk8_depts d ON p.dept_id = d.id "
        "GROUP BY d.name ORDER BY d.name"
    ).collect()
    got = [list(row) for row in rows]
    # Dept 30 has no match and dept 40 has no people: the inner join must drop both.
    want = [["eng", 2, 350], ["ops", 2, 200]]
    expect(got == want, {"got": got, "want": want})
    return {"rows": got}


def check_pandas_roundtrip(spark):
    n = 3000
    source = pd.DataFrame({
        "i": range(n),
        "x": [i / 8 for i in range(n)],  # eighths are exact in binary, so equality is fair
        "s": [None if i % 10 == 0 else f"row{i}" for i in range(n)],
        "b": [i % 2 == 0 for i in range(n)],
    })
    got = (
        spark.createDataFrame(source)
        .where(F.col("i") % 3 == 0)
        .select("i", (F.col("x") * 2).alias("x2"), F.upper("s").alias("s"),
                (~F.col("b")).alias("odd"))
        .orderBy("i")
        .toPandas()
    )
    kept = source[source.i % 3 == 0].reset_index(drop=True)
    want = pd.DataFrame({"i": kept.i, "x2": kept.x * 2, "s": kept.s.str.upper(), "odd": ~kept.b})
    try:
        # Dtypes may legitimately differ (int32 vs int64); the values must not.
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    except AssertionError as exc:
        raise CheckFailed({"mismatch": str(exc)[:1000]}) from None
    return {"rows": len(got), "dtypes": {col: str(dtype) for col, dtype in got.dtypes.items()}}


def million_rows(spark):
    """1M rows: id plus derived columns whose sums have closed forms, and a string column."""
    return spark.range(MILLION).selectExpr(
        "id", "id * 2 AS a", "CAST(id AS DOUBLE) / 4 AS b", "concat('s', CAST(id AS STRING)) AS c"
    )


# sum(id) over 0..n-1 is n(n-1)/2; a doubles it, b quarters it (quarters stay exact in a double).
MILLION_SUMS = {"id": MILLION * (MILLION - 1) // 2, "a": MILLION * (MILLION - 1),
                "b": MILLION * (MILLION - 1) / 8}
# Looked up by id, not by position: without ORDER BY the server may return batches in any order
# (Sail does). Shows that the strings arrive intact and still paired with their row.
MILLION_SAMPLE_ID, MILLION_SAMPLE_C = 123_456, "s123456"


def check_million(seconds, rows, sums, sample):
    detail = {"seconds": seconds, "rows": rows, "sums": sums, "sample_c": sample}
    expect(rows == MILLION and sums == MILLION_SUMS and sample == [MILLION_SAMPLE_C], detail)
    return detail


def check_arrow_1m(spark):
    started = time.perf_counter()
    table = million_rows(spark).toArrow()
    seconds = round(time.perf_counter() - started, 3)
    sums = {col: pc.sum(table[col]).as_py() for col in MILLION_SUMS}
    sample = table.filter(pc.equal(table["id"], MILLION_SAMPLE_ID))["c"].to_pylist()
    return check_million(seconds, table.num_rows, sums, sample)


def check_pandas_1m(spark):
    started = time.perf_counter()
    frame = million_rows(spark).toPandas()
    seconds = round(time.perf_counter() - started, 3)
    # .item() turns numpy scalars into Python numbers, for == and for JSON.
    sums = {col: frame[col].sum().item() for col in MILLION_SUMS}
    sample = frame.loc[frame["id"] == MILLION_SAMPLE_ID, "c"].tolist()
    return check_million(seconds, len(frame), sums, sample)


def check_udf(spark):
    square_plus_one = F.udf(lambda x: x * x + 1, LongType())
    rows = spark.range(5).select("id", square_plus_one("id").alias("y")).orderBy("id").collect()
    got = [row.y for row in rows]
    want = [1, 2, 5, 10, 17]
    expect(got == want, {"got": got, "want": want})
    return {"values": got}


def call_artifact_module(x):
    # Runs on the server: the import can only succeed if the uploaded pyfile reached it.
    import sk8_artifact_double

    return sk8_artifact_double.double(x)


def check_artifact(spark):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, ARTIFACT_MODULE + ".py")
        with open(path, "w") as module:
            module.write("def double(x):\n    return 2 * x\n")
        spark.addArtifacts(path, pyfile=True)
    doubled = F.udf(call_artifact_module, LongType())
    rows = spark.range(4).select("id", doubled("id").alias("y")).orderBy("id").collect()
    got = [row.y for row in rows]
    want = [0, 2, 4, 6]
    expect(got == want, {"got": got, "want": want})
    return {"values": got}


def start_endless_query(spark):
    """Starts a query in a daemon thread; returns the thread and a dict filled when it ends."""
    outcome = {}

    def run():
        # 10**12 rows: minutes at least on any server, so only an interrupt ends it soon. Not
        # sum(id), which overflows a long (an ANSI error) within seconds; not count(*) or max(id),
        # which a planner may answer from the range's statistics without scanning.
        try:
            outcome["result"] = spark.range(10**12).selectExpr("sum(id % 7)").collect()
        except Exception as exc:  # the interrupt is expected to land here
            outcome["error"] = exc
        outcome["ended"] = time.perf_counter()

    # Daemon, so a query that ignores the interrupt cannot keep this process alive.
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    return worker, outcome


def running_spark_jobs(ui):
    """Ids of the Spark jobs running on the server, from its UI's REST API."""
    # No proxy: the UI is on this machine, whatever http_proxy says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{ui}/api/v1/applications", timeout=10) as answer:
        apps = json.load(answer)
    jobs = []
    for app in apps:
        url = f"{ui}/api/v1/applications/{app['id']}/jobs?status=running"
        with opener.open(url, timeout=10) as answer:
            jobs += [job["jobId"] for job in json.load(answer)]
    return jobs


def wait_until_running(ui, outcome):
    """Waits until the server runs a Spark job (the endless query's); returns the job ids."""
    deadline = time.monotonic() + RUNNING_WAIT_S
    while True:
        if "ended" in outcome:
            early = outcome.get("result") or describe_error(outcome["error"])
            raise CheckFailed({"ended_before_interrupt": early})
        try:
            jobs = running_spark_jobs(ui)
        except OSError as exc:
            # A driver busy with the endless query on a loaded machine may answer its UI late:
            # one slow poll is not a failure, the deadline below is.
            jobs, last_error = [], describe_error(exc)
        else:
            last_error = None
        if jobs:
            return jobs
        if time.monotonic() > deadline:
            raise CheckFailed({"no_running_spark_job_within_s": RUNNING_WAIT_S, "ui": ui,
                               "last_poll_error": last_error})
        time.sleep(0.2)


def within(seconds, what, action):
    """action()'s result, or CheckFailed naming `what` if it takes longer than `seconds`."""
    done = {}

    def run():
        try:
            done["value"] = action()
        except Exception as exc:
            done["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise CheckFailed({"timed_out": what, "after_s": seconds})
    if "error" in done:
        raise done["error"]
    return done["value"]


def check_interrupt(spark):
    ui = os.environ.get(SPARK_UI_ENV)
    expect(ui, {"missing": f"{SPARK_UI_ENV}: the server's Spark UI, to see the query run"})
    worker, outcome = start_endless_query(spark)
    running = wait_until_running(ui, outcome)
    interrupted_at = time.perf_counter()
    operation_ids = spark.interruptAll()
    worker.join(INTERRUPT_GRACE_S)
    expect(not worker.is_alive(),
           {"still_running_after_s": INTERRUPT_GRACE_S, "interrupted": operation_ids})
    error = outcome.get("error")
    expect(error is not None, {"finished_despite_interrupt": str(outcome.get("result"))})
    # The session must survive the interrupt and keep serving queries.
    count = within(FOLLOW_UP_S, "spark.range(3).count() after the interrupt",
                   lambda: spark.range(3).count())
    detail = {"error": type(error).__name__, "first_line": first_line(str(error)),
              "seconds_to_end": round(outcome["ended"] - interrupted_at, 3),
              "spark_jobs_running": running,
              "interrupted": operation_ids,
              "session_usable_after": count == 3}
    says_interrupted = re.search(r"interrupt|cancel", detail["error"] + str(error), re.IGNORECASE)
    expect(says_interrupted and detail["session_usable_after"], detail)
    return detail


def check_failing_query(spark):
    try:
        spark.sql("SELECT sk8_no_such_column FROM range(3)").collect()
    except AnalysisException as exc:
        detail = {"error": type(exc).__name__, "first_line": first_line(str(exc))}
        expect("sk8_no_such_column" in str(exc), detail)
        return detail
    raise CheckFailed("the query succeeded; it should fail analysis")


def check_whoami(spark):
    user = spark.sql("SELECT current_user()").first()[0]
    expect(isinstance(user, str) and user != "", {"user": user})
    return {"user": user}


def check_token_conf(spark):
    # Whatever the server answers for its token conf (the default echoed back, or a value),
    # the client must not read it. The caller checks what came back.
    value = spark.conf.get("spark.connect.authenticate.token", "<unset>")
    return {"value": value}


def check_token_redacted(spark):
    # Whatever a server reports for the token conf, the gateway redacts it.
    spark.conf.set("spark.connect.authenticate.token", "planted-by-the-client")
    value = spark.conf.get("spark.connect.authenticate.token")
    expect(value != "planted-by-the-client", {"value": value})
    return {"value": value}


CHECKS = {
    "range_count": check_range_count,
    "sql": check_sql,
    "pandas_roundtrip": check_pandas_roundtrip,
    "arrow_1m": check_arrow_1m,
    "pandas_1m": check_pandas_1m,
    "udf": check_udf,
    "artifact": check_artifact,
    "interrupt": check_interrupt,
    "failing_query": check_failing_query,
    "whoami": check_whoami,
    "token_conf": check_token_conf,
    "token_redacted": check_token_redacted,
}


def run_check(name, spark):
    try:
        return {"check": name, "ok": True, "detail": CHECKS[name](spark)}
    except CheckFailed as failed:
        return {"check": name, "ok": False, "detail": failed.args[0]}
    except Exception as exc:
        return {"check": name, "ok": False, "detail": describe_error(exc)}


def parse_args(argv):
    """(url, check names), or exits 2 with a message on stderr."""
    valid = f"valid checks: {' '.join(CHECKS)} (or all)"
    if len(argv) < 2:
        usage_error(f"usage: {os.path.basename(__file__)} URL CHECK [CHECK...]; {valid}")
    url, names = argv[0], argv[1:]
    names = [n for name in names for n in (CHECKS if name == "all" else [name])]
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        usage_error(f"unknown check(s): {' '.join(unknown)}; {valid}")
    return url, names


def usage_error(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def main(argv):
    url, names = parse_args(argv)
    try:
        spark = SparkSession.builder.remote(url).getOrCreate()
    except Exception as exc:
        # Still one line per check, so a caller counting results sees every check fail.
        spark, connect_error = None, describe_error(exc)
    all_ok = True
    for name in names:
        result = run_check(name, spark) if spark else \
            {"check": name, "ok": False, "detail": {"connect": connect_error}}
        all_ok &= result["ok"]
        print(json.dumps(result, default=str), flush=True)
    if spark:
        try:
            spark.stop()  # ends the server session too (ReleaseSession)
        except Exception as exc:
            print(f"stop failed: {describe_error(exc)}", file=sys.stderr)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
