"""ExecGov's helper for Python scripts: progress and a result people can read.

Shipped with ExecGov and importable in every run (its folder is on PYTHONPATH);
standard library only. Outside ExecGov it prints progress and writes no result.

    import execgov
    execgov.progress(40, "rows")
    execgov.result(total=3, table=[{"region": "north", "amount": 10}, ...])

The result's shape is documented in docs/results.md.
"""

import json
import os
import sys

__all__ = ["progress", "result", "table"]


def progress(percent, text=""):
    """Updates the run's status in chat: prints `::progress PERCENT TEXT`."""
    pct = max(0, min(100, int(percent)))
    line = ("::progress %d %s" % (pct, " ".join(str(text).split()))).rstrip()
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def table(rows, columns=None):
    """`{"columns": [...], "rows": [[...], ...]}` from a list of dicts (columns in
    first-seen order unless given) or a list of lists (columns required)."""
    rows = list(rows)
    if columns is None:
        columns = []
        for row in rows:
            if not isinstance(row, dict):
                raise TypeError("execgov.table: rows that are not dicts need columns=[...]")
            for key in row:
                if key not in columns:
                    columns.append(key)
    columns = [str(c) for c in columns]
    out = []
    for row in rows:
        if isinstance(row, dict):
            out.append([_cell(row.get(c)) for c in columns])
        else:
            cells = [_cell(v) for v in row]
            if len(cells) != len(columns):
                raise ValueError(
                    "execgov.table: a row has %d cells for %d columns" % (len(cells), len(columns))
                )
            out.append(cells)
    return {"columns": columns, "rows": out}


def _cell(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def result(**values):
    """Adds `values` to the run's result (EXECGOV_RESULT); a later call adds to
    and overrides an earlier one. `table=` may be a list of dicts, or already
    `{"columns": ..., "rows": ...}`. Returns the whole result."""
    if isinstance(values.get("table"), (list, tuple)):
        values["table"] = table(values["table"])
    path = os.environ.get("EXECGOV_RESULT")
    current = {}
    if path and os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                current = json.load(f)
        except (OSError, ValueError):
            current = {}
        if not isinstance(current, dict):
            current = {}
    current.update(values)
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(current, f, default=str)
        os.replace(tmp, path)
    return current
