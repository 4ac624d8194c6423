#!/usr/bin/env python3
"""Splits each SIGKILL takeover of a drill into its steps, from the nodes' logs.

    python3 docs/bench/takeover-steps.py <drill report dir>/logs

Needs logs written with
RUST_LOG=warn,understudy::node::election=info,understudy::node::coordinator=info,understudy::node::consumer=info
(scripts/benchmarks' default). For every takeover decided by the refused
address, it prints the milliseconds between the successor's own log lines:

  zookeeper    "forcing the takeover" -> "acquired leadership": the dead
               leader's member deleted, the members read, the epoch claimed
  fence        -> "leading": the PostgreSQL transaction raising the fence
               (the Redis snapshot is read meanwhile and counts here too)
  assign       -> "consuming": the partitions assigned at the stored offsets
  first batch  -> "first commit after takeover": the first fetch and commit,
               until the coordinator hears of it (a little after the commit)

then the mean and the highest of each column. Times are one node's clock, so
no skew enters.
"""

import datetime
import glob
import os
import re
import sys

STEPS = [
    ("forced", re.compile(r"the leader's process is gone .* forcing the takeover")),
    # Only the claim the forced takeover led to: a node that lost the race
    # and leads later, for another reason, is not counted as this takeover.
    ("acquired", re.compile(r"acquired leadership .*reason=leader process gone")),
    ("leading", re.compile(r"\bleading epoch=")),
    ("consuming", re.compile(r"\bconsuming epoch=")),
    ("committed", re.compile(r"first commit after takeover")),
]
# Any other claim ends the takeover being followed: the lines after it are
# another term's.
OTHER_CLAIM = re.compile(r"acquired leadership (?!.*reason=leader process gone)")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")
LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+\w+\s+\S+: (.*)")


def events(path):
    """(time, step) of every step line in one node's log."""
    found = []
    with open(path, errors="replace") as log:
        for raw in log:
            match = LINE.match(COLOUR.sub("", raw))
            if not match:
                continue
            stamp, message = match.groups()
            at = datetime.datetime.fromisoformat(stamp[:26])
            if OTHER_CLAIM.search(message):
                found.append((at, "other claim"))
            for step, pattern in STEPS:
                if pattern.search(message):
                    found.append((at, step))
    return found


def takeovers(found):
    """Each complete forced takeover in one node's log, as its step times."""
    current = None
    for at, step in sorted(found):
        if step == "forced":
            current = {"forced": at}
        elif step == "other claim":
            current = None
        elif current is not None and step not in current:
            current[step] = at
            if step == "committed":
                if all(name in current for name, _ in STEPS):
                    yield current
                current = None
        elif current is not None and step == "acquired":
            # A second claim before the first commit: not one takeover.
            current = None


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit(__doc__)
    rows = []
    for path in sorted(glob.glob(os.path.join(sys.argv[1], "*node*.log"))):
        for times in takeovers(events(path)):
            names = [name for name, _ in STEPS]
            rows.append(
                [
                    (times[b] - times[a]).total_seconds() * 1000
                    for a, b in zip(names, names[1:])
                ]
            )
    if not rows:
        sys.exit("no complete forced takeover in these logs (were they written at info?)")
    header = ["zookeeper", "fence", "assign", "first batch", "total"]
    print(" ".join(f"{name:>11}" for name in header))
    for row in rows:
        print(" ".join(f"{value:>11.1f}" for value in row + [sum(row)]))
    totals = [row + [sum(row)] for row in rows]
    for label, pick in (("mean", lambda c: sum(c) / len(c)), ("max", max)):
        print(" ".join(f"{pick(column):>11.1f}" for column in zip(*totals)), label)
    print(f"{len(rows)} takeovers")


if __name__ == "__main__":
    main()
