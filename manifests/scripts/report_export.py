#!/usr/bin/env python3
"""Monthly sales report from the bundled sample data (manifests/data/sales.csv).

Writes report-<month>.csv into EXECGOV_OUTPUT_DIR, a summary into EXECGOV_RESULT,
and `::progress` lines that ExecGov shows as the run's progress.
"""
import argparse
import csv
import json
import os
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "sales.csv")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--month", required=True)
    p.add_argument("--region", default="all")
    a = p.parse_args()

    print("::progress 10 Reading sales data", flush=True)
    with open(DATA, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["date"].startswith(a.month + "-")]
    if a.region != "all":
        rows = [r for r in rows if r["region"] == a.region]
    if not rows:
        print(f"no sales recorded for {a.month} (region {a.region})", file=sys.stderr)
        return 3

    print(f"::progress 50 Aggregating {len(rows)} rows", flush=True)
    totals = defaultdict(lambda: {"units": 0, "revenue": 0.0})
    for r in rows:
        t = totals[(r["region"], r["product"])]
        t["units"] += int(r["units"])
        t["revenue"] += int(r["units"]) * float(r["unit_price"])

    out_dir = os.environ.get("EXECGOV_OUTPUT_DIR", ".")
    name = f"report-{a.month}.csv"
    print("::progress 80 Writing " + name, flush=True)
    with open(os.path.join(out_dir, name), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["region", "product", "units", "revenue"])
        for (region, product), t in sorted(totals.items()):
            w.writerow([region, product, t["units"], f"{t['revenue']:.2f}"])

    revenue = sum(t["revenue"] for t in totals.values())
    units = sum(t["units"] for t in totals.values())
    result = {"month": a.month, "region": a.region, "rows": len(rows), "units": units, "revenue": round(revenue, 2), "file": name}
    if "EXECGOV_RESULT" in os.environ:
        with open(os.environ["EXECGOV_RESULT"], "w") as f:
            json.dump(result, f)
    print(f"{a.month}: {len(rows)} sales, {units} units, revenue {revenue:.2f} -> {name}")
    print("::progress 100 Done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
