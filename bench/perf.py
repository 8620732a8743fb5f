"""Drives bench/perf.sh: seeds blogql through its public mutations, runs wrk
against blogql and the calibration server on the same query shapes, times
createPost against fan-out, and prints one table. Standard library only."""

import contextlib
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

SHAPES = {
    "flat": "{ posts(first: 100) { edges { node { id title } } } }",
    "nested": "{ posts(first: 100) { edges { node { title author { name } } } } }",
    "deep": "{ posts(first: 20) { edges { node { title author { name postCount } "
    "comments(first: 5) { edges { node { body author { name } } } } } } } }",
    # As Apollo Client sends a list: named fragments, and `__typename` in every selection.
    "fragments": "query Feed { posts(first: 100) { __typename edges { __typename node { ...PostCard } } } } "
    "fragment PostCard on Post { __typename id title author { ...UserChip } } "
    "fragment UserChip on User { __typename id name }",
}
DURATION = os.environ.get("DURATION", "5s")
WRK_CPU = os.environ.get("WRK_CPU", "1")


class Client:
    """One keep-alive connection to a GraphQL endpoint."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port)

    def call(self, query, variables=None, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        self.conn.request("POST", "/graphql", json.dumps({"query": query, "variables": variables or {}}), headers)
        body = json.loads(self.conn.getresponse().read())
        if body.get("errors"):
            raise RuntimeError(f"{query[:60]}: {body['errors']}")
        return body["data"]


def sign_up(client, n):
    data = client.call(
        "mutation($e: String!, $n: String!) { signUp(input: {name: $n, email: $e, password: \"bench-password\"}) "
        "{ token user { id } } }",
        {"e": f"user{n}@bench.example", "n": f"User {n}"},
    )
    return data["signUp"]["token"]


def create_post(client, token, i):
    q = "mutation($t: String!) { createPost(input: {title: $t, body: \"Body of a benchmark post\"}) { id } }"
    return client.call(q, {"t": f"Post {i}"}, token)["createPost"]["id"]


# Pages written before each fdatasync in scattered_pages_per_second: about
# what one group of the write mix writes.
SCATTERED_GROUP = 70


@contextlib.contextmanager
def scratch_file():
    """A file descriptor on the file system blogql's data directory is on
    (BENCH_DATA_DIR), removed afterwards."""
    fd, path = tempfile.mkstemp(dir=os.environ.get("BENCH_DATA_DIR"))
    try:
        yield fd
    finally:
        os.close(fd)
        os.unlink(path)


def scattered_pages_per_second(group=SCATTERED_GROUP, seconds=2.0):
    """What bounds a B-tree's group commit: groups of `group` 4 KiB pages
    written at random places in a 64 MiB file, one fdatasync a group;
    4 KiB pages per second."""
    with scratch_file() as fd:
        slots = (64 << 20) // 4096
        for start in range(0, slots * 4096, 1 << 20):
            os.pwrite(fd, b"\0" * (1 << 20), start)
        os.fdatasync(fd)
        rng, block, pages, started = random.Random(1), b"x" * 4096, 0, time.monotonic()
        while time.monotonic() - started < seconds:
            for _ in range(group):
                os.pwrite(fd, block, rng.randrange(slots) * 4096)
            os.fdatasync(fd)
            pages += group
        return pages / (time.monotonic() - started)


def written_bytes(pid):
    """Bytes the process has sent towards storage (its page-cache writes), from /proc."""
    with open(f"/proc/{pid}/io") as f:
        return int(re.search(r"^write_bytes:\s+(\d+)", f.read(), re.M).group(1))


def store_counters(port):
    """The embedded store's durable commits and the writes they covered, from /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()

    def counter(name):
        m = re.search(rf"^{name} (\d+)", text, re.M)
        if not m:
            sys.exit(f"/metrics has no {name}: run blogql with metrics on and the embedded store")
        return int(m.group(1))

    return counter("blogql_store_durable_commits_total"), counter("blogql_store_grouped_writes_total")


def fsyncs_per_second(seconds=3.0):
    """The disk's own limit: a plain loop rewriting 4 KiB and calling fdatasync,
    on the file system blogql's data directory is on (BENCH_DATA_DIR)."""
    with scratch_file() as fd:
        block, count, started = b"x" * 4096, 0, time.monotonic()
        while time.monotonic() - started < seconds:
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            count += 1
        return count / (time.monotonic() - started)


def seed(port, users=100, posts_per_user=10, comments_per_post=2):
    """100 users, 1,000 posts, 2,000 comments, through the public mutations."""
    client = Client(port)
    started = time.time()
    tokens = [sign_up(client, n) for n in range(users)]
    posts = [[create_post(client, t, i) for i in range(posts_per_user)] for t in tokens]
    q = "mutation($p: ID!) { createComment(input: {postId: $p, body: \"Seeded comment\"}) { id } }"
    for u, mine in enumerate(posts):
        for post in mine:
            for k in range(1, comments_per_post + 1):
                client.call(q, {"p": post}, tokens[(u + k) % users])
    return tokens, posts, time.time() - started


def write_accounts(path, tokens, posts):
    """The accounts file bench/graphql.lua's write mix reads: "<token> <post id>,..." per seeded user."""
    with open(path, "w") as f:
        for token, mine in zip(tokens, posts):
            f.write(f"{token} {','.join(mine)}\n")


def calibration_accounts(path):
    """The write mix's accounts file for the calibration server: its own seeded post ids by author
    (it ignores tokens; every write it takes is user 0's)."""
    posts = [[f"{i:024x}" for i in range(1000) if i % 100 == author] for author in range(100)]
    write_accounts(path, ["calibration-ignores-tokens"] * len(posts), posts)


def medians(runs):
    """wrk results of several runs as one: the median req/s, p50 and p99, and the errors summed."""
    return tuple(statistics.median(m[i] for m in runs) for i in range(3)) + (sum(m[3] for m in runs),)


def wrk(port, connections, body_file=None, script="bench/graphql.lua", env=None):
    """Runs wrk on WRK_CPU; returns (req/s, p50 ms, p99 ms, GraphQL errors)."""
    cmd = ["taskset", "-c", WRK_CPU, "wrk", f"-t1", f"-c{connections}", f"-d{DURATION}", "--latency", "-s", script,
           f"http://127.0.0.1:{port}/graphql"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {}),
                                                                   **({"BODY_FILE": body_file} if body_file else {})},
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = int(re.search(r"graphql_errors (\d+)", out).group(1))
    return rps, pct(50), pct(99), errors


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) // 1024


def time_create_post(port, token, n=200):
    client = Client(port)
    started = time.perf_counter()
    for i in range(n):
        create_post(client, token, i)
    return (time.perf_counter() - started) / n * 1000


def main():
    blogql_port, calibration_port, blogql_pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    tokens, posts, seconds = seed(blogql_port)
    print(f"seeded 100 users, 1,000 posts, 2,000 comments through the API in {seconds:.1f} s "
          f"(peak RSS so far {peak_rss_mib(blogql_pid)} MiB)", flush=True)
    bodies = {}
    for name, query in SHAPES.items():
        f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({"query": query}, f)
        f.close()
        bodies[name] = f.name

    # ROUNDS passes, blogql and the calibration alternating within each, so a
    # slow spell of the machine hits both; every cell is the median of its runs.
    rounds = int(os.environ.get("ROUNDS", "3"))
    runs = {}
    for r in range(rounds):
        for name in SHAPES:
            for c in (1, 32):
                for label, port in (("blogql", blogql_port), ("calibration", calibration_port)):
                    runs.setdefault((name, label, c), []).append(wrk(port, c, bodies[name]))
        print(f"  measured round {r + 1} of {rounds} (peak RSS so far {peak_rss_mib(blogql_pid)} MiB)", flush=True)
    rows = []
    for name in SHAPES:
        row = {"shape": name}
        for label in ("blogql", "calibration"):
            for c in (1, 32):
                row[(label, c)] = medians(runs[(name, label, c)])
        rows.append(row)

    accounts = tempfile.NamedTemporaryFile("w", delete=False)
    accounts.close()
    write_accounts(accounts.name, tokens, posts)
    calibration_mix = tempfile.NamedTemporaryFile("w", delete=False)
    calibration_mix.close()
    calibration_accounts(calibration_mix.name)
    # The write mix ROUNDS times, alternating with the calibration's in-memory mutations; medians.
    bytes_before, (commits_before, grouped_before) = written_bytes(blogql_pid), store_counters(blogql_port)
    write_runs, calibration_write_runs = [], []
    for _ in range(rounds):
        write_runs.append(wrk(blogql_port, 32, env={"ACCOUNTS": accounts.name}))
        calibration_write_runs.append(wrk(calibration_port, 32, env={"ACCOUNTS": calibration_mix.name}))
    bytes_after, (commits_after, grouped_after) = written_bytes(blogql_pid), store_counters(blogql_port)
    writes, calibration_writes = medians(write_runs), medians(calibration_write_runs)
    grouped = max(grouped_after - grouped_before, 1)
    pages_per_write = (bytes_after - bytes_before) / 4096 / grouped
    group_size = grouped / max(commits_after - commits_before, 1)
    print(f"  measured the write mix (peak RSS so far {peak_rss_mib(blogql_pid)} MiB)", flush=True)
    mixed = wrk(blogql_port, 32, env={"ACCOUNTS": accounts.name, "READ_BODY_FILE": bodies["nested"], "READ_SHARE": "0.9"})
    print(f"  measured the 90/10 read/write mix (peak RSS so far {peak_rss_mib(blogql_pid)} MiB)", flush=True)
    fsyncs = fsyncs_per_second()
    scattered = scattered_pages_per_second()

    client = Client(blogql_port)
    small, big = sign_up(client, 1000), sign_up(client, 1001)
    for i in range(10):
        create_post(client, small, i)
    fan_out = int(os.environ.get("FAN_OUT", "10000"))
    for i in range(fan_out):
        create_post(client, big, i)
    small_ms, big_ms = time_create_post(blogql_port, small), time_create_post(blogql_port, big)
    peak = peak_rss_mib(blogql_pid)

    print()
    print(f"| shape | blogql req/s c=32 | c=1 | p50 c=1 | p99 c=1 | calibration req/s c=32 | c=1 | p50 c=1 "
          f"| blogql / calibration c=32 | p50 c=1 blogql / calibration | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        b32, b1, c32, c1 = row[("blogql", 32)], row[("blogql", 1)], row[("calibration", 32)], row[("calibration", 1)]
        print(f"| {row['shape']} | {b32[0]:,.0f} | {b1[0]:,.0f} | {b1[1]:.2f} ms | {b1[2]:.2f} ms | {c32[0]:,.0f} | "
              f"{c1[0]:,.0f} | {c1[1]:.2f} ms | {100 * b32[0] / c32[0]:.0f}% | {b1[1] / c1[1]:.2f}× | {b32[3] + b1[3]} |")
    print()
    print(f"write mix (createPost, createComment, likePost) at 32 connections: {writes[0]:,.0f} req/s, "
          f"p50 {writes[1]:.2f} ms, p99 {writes[2]:.2f} ms, {writes[3]} answers with errors")
    print(f"the calibration's in-memory mutations (the same mix, no disk, no auth, no limits) at 32 connections: "
          f"{calibration_writes[0]:,.0f} req/s, p50 {calibration_writes[1]:.2f} ms, p99 {calibration_writes[2]:.2f} ms, "
          f"{calibration_writes[3]} answers with errors; the write mix is {writes[0] / calibration_writes[0]:.2f}× that")
    print(f"read/write mix (90% the nested read, 10% the write mix) at 32 connections: {mixed[0]:,.0f} req/s, "
          f"p50 {mixed[1]:.2f} ms, p99 {mixed[2]:.2f} ms, {mixed[3]} answers with errors")
    print(f"the disk's own limit: a plain loop of 4 KiB write + fdatasync does {fsyncs:,.0f}/s; "
          f"the write mix is {writes[0] / fsyncs:.2f}× that, the calibration's in-memory mutations "
          f"{calibration_writes[0] / fsyncs:.2f}×")
    print(f"the write mix's disk writes: {pages_per_write:.1f} pages of 4 KiB a write (the redo log's appends and "
          f"the store file's pages), in groups of {group_size:.1f} writes a durable commit; the disk takes "
          f"{scattered:,.0f} scattered pages/s under fdatasync ({SCATTERED_GROUP} a sync): were every page "
          f"scattered, as with --store-redo-log-mib 0, that would bound the mix at "
          f"{scattered / max(pages_per_write, 0.01):,.0f} writes/s")
    print(f"createPost: {small_ms:.2f} ms for an author with 10 posts, {big_ms:.2f} ms with {fan_out:,}: "
          f"ratio {big_ms / small_ms:.2f}")
    print(f"blogql peak RSS (VmHWM) over the whole run, seeding included: {peak} MiB")


if __name__ == "__main__":
    main()
