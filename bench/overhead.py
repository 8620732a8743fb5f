"""Drives bench/overhead.sh: signs one account up on each blogql, then runs
the overhead probes against every build and the calibration server in
alternating rounds, through perf.py's wrk runner, and prints one table.
Standard library only.
    python3 bench/overhead.py CALIBRATION_PORT NAME=PORT [NAME=PORT ...]"""

import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import perf  # noqa: E402

PROBES = [
    ("anonymous { __typename }", "{ __typename }", False),
    ("signed in { __typename }", "{ __typename }", True),
    ("signed in { viewer { id } }", "{ viewer { id } }", True),
]


def main():
    calibration = int(sys.argv[1])
    builds = [(name, int(port)) for name, port in (arg.rsplit("=", 1) for arg in sys.argv[2:])]
    tokens = {port: perf.sign_up(perf.Client(port), 0) for _, port in builds}
    with tempfile.TemporaryDirectory() as bodies:
        files = {}
        for _, query, _ in PROBES:
            if query not in files:
                files[query] = os.path.join(bodies, f"{len(files)}.json")
                with open(files[query], "w") as f:
                    json.dump({"query": query}, f)
        measure(calibration, builds, tokens, files)


def measure(calibration, builds, tokens, files):
    """ROUNDS alternating rounds of every probe on every build, and the calibration's; prints the table."""
    rounds = int(os.environ.get("ROUNDS", "3"))
    runs = {}
    for n in range(1, rounds + 1):
        for _, port in builds:
            for label, query, signed in PROBES:
                env = {"TOKEN": tokens[port]} if signed else {}
                runs.setdefault((port, label), []).append(perf.wrk(port, 32, files[query], env=env))
        runs.setdefault((calibration, "calibration"), []).append(perf.wrk(calibration, 32, files["{ __typename }"]))
        print(f"  measured round {n} of {rounds}", file=sys.stderr, flush=True)

    def cell(key):
        rps = statistics.median(r[0] for r in runs[key])
        errors = sum(r[3] for r in runs[key])
        return f"{rps:,.0f}" + (f" ({errors} answers with errors)" if errors else "")

    print("| build | " + " | ".join(label for label, _, _ in PROBES) + " |")
    print("| --- " * (len(PROBES) + 1) + "|")
    for name, port in builds:
        print(f"| {name} | " + " | ".join(cell((port, label)) for label, _, _ in PROBES) + " |")
    print(f"calibration (bare async-graphql, anonymous {{ __typename }}): {cell((calibration, 'calibration'))} req/s")


if __name__ == "__main__":
    main()
