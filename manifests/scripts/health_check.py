#!/usr/bin/env python3
"""Host inspection: filesystem usage, memory and load. Exit 1 when a check fails."""
import argparse
import json
import os
import shutil
import sys


def meminfo() -> dict:
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--max-disk-percent", type=int, default=90)
    a = p.parse_args()

    problems = []
    disk = shutil.disk_usage("/")
    disk_pct = round(100 * disk.used / disk.total, 1)
    print(f"disk /: {disk_pct}% used ({disk.free // 2**30} GiB free)")
    if disk_pct > a.max_disk_percent:
        problems.append(f"/ is {disk_pct}% full (limit {a.max_disk_percent}%)")

    mem = meminfo()
    mem_pct = None
    if mem.get("MemTotal"):
        mem_pct = round(100 * (1 - mem.get("MemAvailable", 0) / mem["MemTotal"]), 1)
        print(f"memory: {mem_pct}% used")

    load1, load5, _ = os.getloadavg()
    cpus = os.cpu_count() or 1
    print(f"load: {load1:.2f} (1 min), {load5:.2f} (5 min) on {cpus} CPUs")
    if load5 > 4 * cpus:
        problems.append(f"5-minute load {load5:.2f} is over 4x the {cpus} CPUs")

    result = {"disk_percent": disk_pct, "memory_percent": mem_pct, "load1": round(load1, 2), "ok": not problems}
    if "EXECGOV_RESULT" in os.environ:
        with open(os.environ["EXECGOV_RESULT"], "w") as f:
            json.dump(result, f)
    for problem in problems:
        print("FAIL: " + problem, file=sys.stderr)
    print("healthy" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
