"""Drives bench/feed.sh: readers follow 10, 100, 1,000 and 5,000 seeded
authors through the API, then wrk measures the feed beside the global post
list. Standard library only; wrk and the table format come from perf.py."""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

from perf import DURATION, Client, peak_rss_mib, sign_up, wrk

FEED = "{ feed(first: 20) { edges { node { title author { name } } } } }"
POSTS = "{ posts(first: 20) { edges { node { title author { name } } } } }"
FOLLOW = "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }"


def body_file(query):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"query": query}, f)
    f.close()
    return f.name


def profile(port, pid, body, token):
    """`perf record` on the server while wrk runs the feed at 32 connections; prints perf's top entries."""
    data = tempfile.mkdtemp()
    recorder = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", f"{data}/perf.data",
                                 "--", "sleep", DURATION.rstrip("s")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    print("feed at 32 connections: %.0f req/s" % wrk(port, 32, body, env={"TOKEN": token})[0])
    recorder.wait()
    report = subprocess.run(["perf", "report", "-i", f"{data}/perf.data", "--no-children", "--stdio",
                             "--percent-limit", "1.5"], capture_output=True, text=True).stdout
    print("\n".join(line for line in report.splitlines() if re.match(r"^ +[0-9.]+%", line))[:4000])


def main():
    port, tokens_file, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    authors = [line.split()[1] for line in open(tokens_file)]
    client = Client(port)
    sizes = [n for n in (10, 100, 1000, 5000) if n <= len(authors)]
    # Two readers per size: one follows the n oldest accounts, whose posts are
    # all older than everyone else's (the seed writes each author's posts in
    # turn), the worst case for a walk of the global time order; the other
    # follows n accounts spread evenly over the seed, so their posts are spread
    # over time as a real reader's followees' are.
    readers = {}
    started = time.time()
    for n in sizes:
        picks = {"oldest": authors[:n]}
        if n < len(authors):
            picks["spread"] = authors[::len(authors) // n][:n]
        for kind, followed in picks.items():
            token = sign_up(client, 100_000 + n + (50_000 if kind == "spread" else 0))
            for author in followed:
                client.call(FOLLOW, {"u": author}, token)
            readers[n, kind] = token
    print(f"readers follow {sizes} of {len(authors)} authors (5 posts each); set up in {time.time() - started:.1f} s",
          flush=True)
    feed, posts = body_file(FEED), body_file(POSTS)
    if os.environ.get("PROFILE"):
        profile(port, pid, feed, readers[int(os.environ["PROFILE"]), os.environ.get("KIND", "oldest")])
        return
    rows = []
    for (n, kind), token in readers.items():
        row = {c: wrk(port, c, feed, env={"TOKEN": token}) for c in (1, 32)}
        rows.append((f"feed, {n:,} followees ({kind})", row))
    rows.append(("posts (global)", {c: wrk(port, c, posts) for c in (1, 32)}))
    base = rows[-1][1][1][1]
    print()
    print("| query | p50 c=1 | p99 c=1 | req/s c=1 | p50 c=32 | p99 c=32 | req/s c=32 | p50 c=1 / posts | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, row in rows:
        one, many = row[1], row[32]
        print(f"| {name} | {one[1]:.2f} ms | {one[2]:.2f} ms | {one[0]:,.0f} | {many[1]:.2f} ms | {many[2]:.2f} ms | "
              f"{many[0]:,.0f} | {one[1] / base:.2f}× | {one[3] + many[3]} |")
    print(f"\nblogql peak RSS (VmHWM): {peak_rss_mib(pid)} MiB")


if __name__ == "__main__":
    main()
