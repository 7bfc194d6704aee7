#!/usr/bin/env python3
"""Deletes files older than --days under one of the demo folders.

Refuses any folder outside /tmp/execgov-demo, whatever it is given. When the
demo folder does not exist yet, it is created with sample files aged 1 to 90
days, so the demo has something to clean.
"""
import argparse
import os
import sys
import time

ROOT = "/tmp/execgov-demo"


def seed(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    now = time.time()
    for age in (1, 5, 20, 45, 60, 90):
        path = os.path.join(folder, f"export-{age:02d}d.csv")
        with open(path, "w") as f:
            f.write("sample,data\n")
        os.utime(path, (now - age * 86400, now - age * 86400))
    print(f"demo: created {folder} with 6 sample files aged 1-90 days")


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
    if not os.path.isdir(folder):
        seed(folder)

    cutoff = time.time() - a.days * 86400
    old = sorted(
        e.path for e in os.scandir(folder) if e.is_file(follow_symlinks=False) and e.stat().st_mtime < cutoff
    )
    for i, path in enumerate(old, 1):
        print(f"::progress {int(100 * i / len(old))} {os.path.basename(path)}", flush=True)
        if dry:
            print(f"would delete {path}")
        else:
            os.remove(path)
            print(f"deleted {path}")
    verb = "would delete" if dry else "deleted"
    print(f"{verb} {len(old)} file(s) older than {a.days} days in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
