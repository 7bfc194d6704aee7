#!/usr/bin/env python3
"""Deletes files older than --days under one of the demo folders.

Refuses any folder outside /tmp/execgov-demo, whatever it is given. Before it
looks, it puts back any of the demo's six sample files (aged 1 to 90 days) that
is missing, so every run has the same files to clean and prints the same lines.
"""
import argparse
import os
import sys
import time

ROOT = "/tmp/execgov-demo"
SAMPLE_AGES_DAYS = (1, 5, 20, 45, 60, 90)


def seed(folder: str) -> None:
    """Writes each missing sample file under a temporary name, ages it, then
    renames it into place: a run beside this one never sees a half-made file."""
    os.makedirs(folder, exist_ok=True)
    now = time.time()
    for age in SAMPLE_AGES_DAYS:
        path = os.path.join(folder, f"export-{age:02d}d.csv")
        if os.path.exists(path):
            continue
        tmp = os.path.join(folder, f".export-{age:02d}d.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write("sample,data\n")
        os.utime(tmp, (now - age * 86400, now - age * 86400))
        os.replace(tmp, path)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--dry-run", default="false")
    a = p.parse_args()
    dry = a.dry_run == "true"

    folder = os.path.realpath(a.dir)
    if not folder.startswith(ROOT + "/"):
        print(f"refusing to clean {a.dir}: only folders under {ROOT} are allowed", file=sys.stderr)
        return 2
    seed(folder)

    cutoff = time.time() - a.days * 86400
    old = sorted(
        e.path
        for e in os.scandir(folder)
        if not e.name.startswith(".") and e.is_file(follow_symlinks=False) and e.stat().st_mtime < cutoff
    )
    for i, path in enumerate(old, 1):
        print(f"::progress {int(100 * i / len(old))} {os.path.basename(path)}", flush=True)
        if dry:
            print(f"would delete {path}")
        else:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass  # a run beside this one deleted it first
            print(f"deleted {path}")
    verb = "would delete" if dry else "deleted"
    print(f"{verb} {len(old)} file(s) older than {a.days} days in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
