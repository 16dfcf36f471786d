#!/usr/bin/env python3
"""gateway_routes.py -- one Spark Connect server reached by several routes (direct, sk8, nginx,
any other gRPC proxy), measured side by side, interleaved; run by benches/gateway.sh.

    gateway_routes.py [--reps N] [--rows N] [--tiny N] [--clients N] [--seconds S]
                      [--server-pid PID] ROUTE ...

ROUTE is NAME=URL, NAME=URL@tree:PID or NAME=URL@self:PID: the proxy's process, whose CPU and
RSS are read from /proc with its descendants (`tree`: nginx's workers count) or alone (`self`:
sk8, whose children are the session servers). The first route is the baseline (direct).
Each rep runs every route in turn (the order rotates between reps), each step in fresh client
processes:

- big: `toArrow()` of --rows rows x 4 columns with the client's defaults; wall time, the
  proxy's CPU seconds per GB of Arrow received, the server's CPU seconds;
- tiny: --tiny sequential `range(1).collect()` after 10 unmeasured ones; p50 and p99;
- throughput: --clients processes running tiny queries for --seconds; queries per second.

The proxy's RSS is read before anything else (idle; then --warm-up runs each route once, small,
unmeasured) and after the last rep (after load). Printed:
per-rep JSON lines on stderr, then medians of per-rep values and of per-rep ratios to the
baseline as Markdown on stdout.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")
HERE = os.path.abspath(__file__)


# ---- client side: run in a fresh process per measurement -------------------------------------

def session(url):
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(url).getOrCreate()
    spark.range(1).collect()
    return spark


def client_big(url, rows):
    spark = session(url)
    big = spark.range(rows).selectExpr(
        "id", "id * 2 AS a", "CAST(id AS DOUBLE) / 3 AS b",
        "concat('s', CAST(id AS STRING)) AS c")
    t0 = time.perf_counter()
    table = big.toArrow()
    seconds = time.perf_counter() - t0
    assert table.num_rows == rows, table.num_rows
    return {"seconds": seconds, "bytes": table.nbytes}


def client_tiny(url, n):
    spark = session(url)
    for _ in range(10):
        spark.range(1).collect()
    latencies = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert spark.range(1).collect()[0][0] == 0
        latencies.append(time.perf_counter() - t0)
    return {"latencies": latencies}


def client_loop(url):
    """Ready once warm; then tiny queries until the deadline read from stdin."""
    spark = session(url)
    print("ready", flush=True)
    deadline = float(sys.stdin.readline())
    count = 0
    while time.time() < deadline:
        spark.range(1).collect()
        count += 1
    return {"queries": count}


# ---- /proc ------------------------------------------------------------------------------------

def tree(pid):
    """The process and its descendants; a negative pid: the process alone."""
    if pid < 0:
        return [-pid]
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def rss_mib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


# ---- driver -----------------------------------------------------------------------------------

def run_client(mode, *args):
    out = subprocess.run([sys.executable, HERE, "--client", mode, *map(str, args)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_big(route, rows, server_pid):
    before = cpu_seconds(route["pid"]) if route["pid"] else None
    server_before = cpu_seconds(server_pid) if server_pid else None
    r = run_client("big", route["url"], rows)
    if before is not None:
        r["proxy_cpu_s_per_gb"] = (cpu_seconds(route["pid"]) - before) / (r["bytes"] / 1e9)
    if server_before is not None:
        r["server_cpu_s"] = cpu_seconds(server_pid) - server_before
    return r


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure_tiny(route, n):
    latencies = run_client("tiny", route["url"], n)["latencies"]
    return {"p50_ms": 1e3 * percentile(latencies, 0.5), "p99_ms": 1e3 * percentile(latencies, 0.99)}


def measure_throughput(route, clients, seconds):
    procs = [subprocess.Popen([sys.executable, HERE, "--client", "loop", route["url"]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(clients)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", "a throughput client did not start"
    deadline = time.time() + seconds
    for p in procs:
        p.stdin.write(f"{deadline}\n")
        p.stdin.flush()
    total = 0
    for p in procs:
        out, _ = p.communicate()
        assert p.returncode == 0, "a throughput client failed"
        total += json.loads(out.strip().splitlines()[-1])["queries"]
    return {"qps": total / seconds}


def parse_route(text):
    name, rest = text.split("=", 1)
    url, _, proc = rest.partition("@")
    if not proc:
        return {"name": name, "url": url, "pid": None}
    scope, pid = proc.split(":")
    return {"name": name, "url": url, "pid": int(pid) if scope == "tree" else -int(pid)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--tiny", type=int, default=100)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--server-pid", type=int)
    ap.add_argument("--warm-up", action="store_true",
                    help="after reading idle RSS, one small unmeasured run of each route")
    ap.add_argument("routes", nargs="+", type=parse_route)
    a = ap.parse_args()
    routes = a.routes
    idle = {r["name"]: rss_mib(r["pid"]) for r in routes if r["pid"]}
    if a.warm_up:
        for route in routes:
            measure_big(route, min(a.rows, 1_000_000), None)
            measure_tiny(route, 10)
            measure_throughput(route, 2, 2)
    reps = []
    for rep in range(a.reps):
        shift = rep % len(routes)
        results = {}
        for route in routes[shift:] + routes[:shift]:
            r = {"load1": os.getloadavg()[0]}
            r.update(measure_big(route, a.rows, a.server_pid))
            r.update(measure_tiny(route, a.tiny))
            r.update(measure_throughput(route, a.clients, a.seconds))
            results[route["name"]] = r
            print(f"rep{rep} {route['name']} {json.dumps(r)}", file=sys.stderr, flush=True)
        reps.append(results)
    after = {r["name"]: rss_mib(r["pid"]) for r in routes if r["pid"]}
    report(routes, reps, idle, after)


def report(routes, reps, idle, after):
    base = routes[0]["name"]
    names = [r["name"] for r in routes]

    def med(name, key):
        values = [rep[name][key] for rep in reps if key in rep[name]]
        return statistics.median(values) if values else None

    def ratio(name, key):
        return statistics.median(rep[name][key] / rep[base][key] for rep in reps)

    def added(name, key):
        return statistics.median(rep[name][key] - rep[base][key] for rep in reps)

    def cell(value, fmt):
        return "–" if value is None else format(value, fmt)

    rows = [
        ("big `toArrow` time, s", lambda n: cell(med(n, "seconds"), ".2f")),
        ("big time vs direct (per-rep ratio)", lambda n: cell(ratio(n, "seconds"), ".2f")),
        ("proxy CPU s / GB", lambda n: cell(med(n, "proxy_cpu_s_per_gb"), ".2f")),
        ("server CPU s (big)", lambda n: cell(med(n, "server_cpu_s"), ".2f")),
        ("tiny p50, ms", lambda n: cell(med(n, "p50_ms"), ".2f")),
        ("tiny p50 added vs direct, ms", lambda n: cell(added(n, "p50_ms"), "+.2f")),
        ("tiny p99 added vs direct, ms", lambda n: cell(added(n, "p99_ms"), "+.2f")),
        ("throughput, queries/s", lambda n: cell(med(n, "qps"), ".1f")),
        ("throughput vs direct (per-rep ratio)", lambda n: cell(ratio(n, "qps"), ".2f")),
        ("RSS idle, MiB", lambda n: cell(idle.get(n), ".1f")),
        ("RSS after load, MiB", lambda n: cell(after.get(n), ".1f")),
    ]
    print("| figure (median of per-rep values) | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label, f in rows:
        print(f"| {label} | " + " | ".join(f(n) for n in names) + " |")
    loads = [rep[n]["load1"] for rep in reps for n in names]
    print(f"\nload average (1 min) during the runs: {min(loads):.1f}–{max(loads):.1f}; "
          f"{len(reps)} reps; Arrow bytes per big transfer: {reps[0][base]['bytes']:,}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--client":
        mode, args = sys.argv[2], sys.argv[3:]
        if mode == "big":
            print(json.dumps(client_big(args[0], int(args[1]))))
        elif mode == "tiny":
            print(json.dumps(client_tiny(args[0], int(args[1]))))
        else:
            print(json.dumps(client_loop(args[0])))
    else:
        main()
