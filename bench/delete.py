#!/usr/bin/env python3
"""Times deleteUser at growing fan-out, and how long other writers wait meanwhile.

For each size N it seeds three accounts with N posts each (every post gets two
comments and two likes from the other two accounts), serves them, and while a
second account keeps writing comments in a loop, deletes the first account
through the API. It reports the cascade's size, the deleteUser time, and the
longest a concurrent write took while the delete ran (on the embedded store,
redb's single writer makes other writes queue behind the cascade).

    python3 bench/delete.py                       # embedded: 10, 1000, 10000, 100000 posts
    python3 bench/delete.py --budget 1000000000   # the same, never staged (one transaction each)
    python3 bench/delete.py --sizes 10,1000 --no-writer --mongo 'mongodb://127.0.0.1:27017/?replicaSet=rs0'

Against mongoeco, run with --no-writer: there a concurrent writer, even on
documents the cascade does not touch, keeps the cascade's transaction
retrying past the 30 s request timeout, which says more about mongoeco's
conflict detection than about MongoDB.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

BIN = os.environ.get("BLOGQL_BIN", "target/release/blogql")
SECRET = "delete-bench-secret-0123456789abcdef"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def gql(port, token, query, variables):
    body = json.dumps({"query": query, "variables": variables}).encode()
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body, headers)
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def run(size, mongo, with_writer, budget):
    data = tempfile.mkdtemp(prefix="blogql-delete-")
    # The reaper logs each finished job at info.
    env = dict(os.environ, BLOGQL_JWT_SECRET=SECRET, RUST_LOG="warn,blogql::reaper=info")
    if budget:
        env["BLOGQL_CASCADE_BUDGET_DOCS"] = str(budget)
    env.pop("MONGODB_URI", None)
    if mongo:
        env["MONGODB_URI"] = mongo
        env["BLOGQL_MONGODB_DATABASE"] = f"delete_bench_{size}_{os.getpid()}"
    tokens = os.path.join(data, "tokens.txt")
    started = time.monotonic()
    subprocess.run([BIN, "seed", "--data-dir", data, "--users", "3", "--posts-per-user", str(size),
                    "--comments-per-post", "2", "--likes-per-post", "2", "--follows-per-user", "2",
                    "--tokens-out", tokens], env=env, check=True, stdout=subprocess.DEVNULL)
    seeded = time.monotonic() - started
    accounts = [line.split(" ") for line in open(tokens).read().splitlines()]
    port = free_port()
    log = open(os.path.join(data, "server.log"), "w")
    server = subprocess.Popen([BIN, "serve", "--data-dir", data, "--bind", f"127.0.0.1:{port}",
                               "--writes-per-user-per-minute", "1000000000"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"blogql exited:\n{open(os.path.join(data, 'server.log')).read()[-3000:]}")
                time.sleep(0.05)
        victim_token, victim = accounts[0][0], accounts[0][1]
        # The concurrent writer is a fresh account writing on its own post, which
        # the cascade does not touch: it measures waiting for the store, not conflicts.
        signed = gql(port, "", "mutation { signUp(input: {name: \"Writer\", email: \"writer@example.com\", "
                     "password: \"password123\"}) { token } }", {})
        writer_token = signed["data"]["signUp"]["token"]
        made = gql(port, writer_token, "mutation { createPost(input: {title: \"w\", body: \"w\"}) { id } }", {})
        writer_post = made["data"]["createPost"]["id"]
        writes = []  # (start, end)
        failed = []
        stop = threading.Event()

        def writer():
            while not stop.is_set():
                t = time.monotonic()
                try:
                    gql(port, writer_token,
                        "mutation($p: ID!) { createComment(input: {postId: $p, body: \"w\"}) { id } }",
                        {"p": writer_post})
                    writes.append((t, time.monotonic()))
                except OSError as err:
                    failed.append(str(err))
                    time.sleep(0.1)

        thread = threading.Thread(target=writer, daemon=True)
        if with_writer:
            thread.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        done = gql(port, victim_token, "mutation($id: ID!) { deleteUser(id: $id) { deletedPostCount "
                   "deletedCommentCount detachedReferenceCount staged } }", {"id": victim})
        t1 = time.monotonic()
        staged = bool(done.get("data", {}).get("deleteUser", {}).get("staged"))
        t2 = t1
        if staged:
            # Until the reaper has deleted everything (its log line).
            for _ in range(12000):
                log.flush()
                if "staged deletion finished" in open(os.path.join(data, "server.log")).read():
                    break
                time.sleep(0.05)
            t2 = time.monotonic()
        time.sleep(0.5)
        stop.set()
        if with_writer:
            thread.join()
        if server.poll() is not None:
            raise SystemExit(f"blogql exited:\n{open(os.path.join(data, 'server.log')).read()[-3000:]}")
        if "errors" in done:
            raise SystemExit(f"deleteUser failed at {size}: {done['errors']}")
        d = done["data"]["deleteUser"]
        during = [e - s for s, e in writes if e > t0 and s < t2]
        outside = [e - s for s, e in writes if e <= t0 or s >= t2]
        return {
            "posts": d["deletedPostCount"], "comments": d["deletedCommentCount"],
            "detached": d["detachedReferenceCount"], "seconds": t1 - t0, "seed_seconds": seeded,
            "staged": staged, "reaped_seconds": t2 - t0,
            "max_wait": max(during) if during else 0.0, "writes_during": len(during),
            "typical_write": statistics.median(outside) if outside else 0.0,
            "failed_writes": len(failed),
        }
    finally:
        server.terminate()
        server.wait()
        check = subprocess.run([BIN, "check", "--data-dir", data], env=env, capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"the store is inconsistent after deleting at {size}:\n{check.stdout}{check.stderr[-2000:]}")
        shutil.rmtree(data, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,1000,10000,100000")
    parser.add_argument("--mongo", help="run on MongoDB at this URI instead of the embedded store")
    parser.add_argument("--budget", type=int, help="--cascade-budget-docs for the server (default: its own)")
    parser.add_argument("--no-writer", action="store_true",
                        help="no concurrent writer (mongoeco starves a transaction that overlaps other writers)")
    args = parser.parse_args()
    print(f"backend: {'MongoDB at ' + args.mongo if args.mongo else 'embedded (redb)'}; "
          f"{os.cpu_count()} cores")
    print(f"cascade budget: {args.budget or 'the server default'}")
    print("| posts | comments deleted | references detached | staged | deleteUser answered | all deleted "
          "| longest concurrent write until then | writes completed meanwhile | typical write | seeding |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in [int(s) for s in args.sizes.split(",")]:
        r = run(size, args.mongo, not args.no_writer, args.budget)
        print(f"| {r['posts']:,} | {r['comments']:,} | {r['detached']:,} | {'yes' if r['staged'] else 'no'} "
              f"| {r['seconds']:.2f} s | {r['reaped_seconds']:.2f} s "
              f"| {r['max_wait'] * 1000:.0f} ms | {r['writes_during']} | {r['typical_write'] * 1000:.1f} ms "
              f"| {r['seed_seconds']:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
