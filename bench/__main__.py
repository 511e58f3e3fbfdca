"""`make bench`: run every scenario, print one table, write `bench/results.json`.

It reports; it does not gate: the exit status is 0 even when a target is missed, and the
table says which ones were. `--quick` runs smaller sizes (a smoke test, not a result).
`--only NAME` runs the modules whose name contains NAME.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import readme
from bench.common import Result, meets

MODULES = (
    "bench_sse",
    "bench_render",
    "bench_client",
    "bench_pipeline",
    "bench_discord",
    "bench_answers",
    "bench_memory",
    "bench_startup",
    "bench_store",
    "bench_replicas",
)
RESULTS = Path(__file__).with_name("results.json")


def run_module(name: str, *, quick: bool) -> list[Result]:
    module = importlib.import_module(f"bench.{name}")
    run = module.run
    if "quick" in inspect.signature(run).parameters:
        return list(run(quick=quick))
    return list(run())


def table(results: list[Result]) -> list[str]:
    """One row per figure: scenario, figure, value, target, ok/FAIL."""
    rows = [("scenario", "figure", "value", "target", "")]
    for item in results:
        targets = item.get("targets", {})
        for key, value in item["figures"].items():
            target = targets.get(key, "")
            verdict = meets(value, target) if target else None
            mark = "" if verdict is None else ("ok" if verdict else "FAIL")
            rows.append((item["name"], key, str(value), target, mark))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--only", default="", help="run only modules whose name contains this")
    args = parser.parse_args(argv)
    results: list[Result] = []
    started = time.perf_counter()
    for name in MODULES:
        if args.only not in name:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        try:
            results.extend(run_module(name, quick=args.quick))
        except Exception as err:
            results.append({"name": name, "figures": {"error": repr(err)}, "targets": {}})
        print(f"  {name}: {time.perf_counter() - begun:.1f} s", file=sys.stderr, flush=True)
    print("\n".join(table(results)))
    failed = [
        (item["name"], key)
        for item in results
        for key, target in item.get("targets", {}).items()
        if meets(item["figures"].get(key), target) is False
    ]
    document: dict[str, Any] = {
        "env": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "quick": args.quick,
            "seconds": round(time.perf_counter() - started, 1),
        },
        "results": results,
    }
    if not args.quick and not args.only:
        RESULTS.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwrote {RESULTS.name}", file=sys.stderr)
        if readme.update(results=RESULTS):
            print("regenerated the README's performance table", file=sys.stderr)
    print(f"\n{len(failed)} target(s) missed: {failed}" if failed else "\nall targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
