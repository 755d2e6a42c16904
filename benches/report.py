#!/usr/bin/env python3
"""Markdown report of the benches: criterion medians and the project's targets.

Ratio targets are read from the samples measured interleaved with their floors
(`interleaved.json`, written by the benches), as the median of the per-sample ratios; a ratio
with no interleaved samples falls back to the two medians (marked "medians").

Usage: python3 benches/report.py [CRITERION_DIR]   (default: $CRITERION_HOME, else
$CARGO_TARGET_DIR/criterion, else target/criterion next to this script's workspace)
"""

import json
import os
import sys
from pathlib import Path

# The ids and the targets, shared with the benches themselves (benches/common).
_TARGETS = json.loads((Path(__file__).resolve().parent / "targets.json").read_text())
IDS = _TARGETS["ids"]
# (numerator, denominator, operator, bound)
RATIOS = [tuple(r) for r in _TARGETS["ratios"]]
# (id, operator, bound in ns)
ABSOLUTE = [tuple(a) for a in _TARGETS["absolute_ns"]]
# (id, per-unit id, units)
SCALED = [tuple(a) for a in _TARGETS.get("scaled", [])]


def criterion_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    if "CRITERION_HOME" in os.environ:
        return Path(os.environ["CRITERION_HOME"])
    if "CARGO_TARGET_DIR" in os.environ:
        return Path(os.environ["CARGO_TARGET_DIR"]) / "criterion"
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def estimates(root: Path, bench_id: str):
    path = root / bench_id / "new" / "estimates.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    m = data["median"]
    ci = m.get("confidence_interval", {})
    return m["point_estimate"], ci.get("lower_bound"), ci.get("upper_bound")


def fmt_ns(ns) -> str:
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3f} µs"
    return f"{ns:.1f} ns"


def check(value: float, op: str, bound: float) -> bool:
    return {"<=": value <= bound, "<": value < bound, ">=": value >= bound}.get(op, value > bound)


def interleaved(root: Path) -> dict:
    try:
        return json.loads((root / "interleaved.json").read_text())
    except (OSError, ValueError):
        return {}


def median(values):
    v = sorted(values)
    n = len(v)
    if n == 0:
        return None
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def main() -> int:
    root = criterion_dir()
    med = {}
    print(f"Criterion results from `{root}`\n")
    print("| id | median | 95% CI of the median |")
    print("|---|---:|---|")
    for bench_id in IDS:
        e = estimates(root, bench_id)
        if e is None:
            print(f"| `{bench_id}` | - | - |")
            continue
        med[bench_id] = e[0]
        print(f"| `{bench_id}` | {fmt_ns(e[0])} | {fmt_ns(e[1])} – {fmt_ns(e[2])} |")

    print("\n| target | value | bound | verdict |")
    print("|---|---:|---|---|")
    samples = interleaved(root)
    for num, den, op, bound in RATIOS:
        name = f"`{num}` / `{den}`"
        r = median(samples.get(f"{num} / {den}", []))
        how = f"interleaved, {len(samples.get(f'{num} / {den}', []))} samples"
        if r is None and num in med and den in med and med[den] > 0:
            r, how = med[num] / med[den], "medians"
        if r is not None:
            verdict = "met" if check(r, op, bound) else "**missed**"
            print(f"| {name} | {r:.3f} ({how}) | {op} {bound:g} | {verdict} |")
        else:
            print(f"| {name} | - | {op} {bound:g} | - |")
    for bench_id, op, bound in ABSOLUTE:
        name = f"`{bench_id.split('/')[1]}`"
        if bench_id in med:
            v = med[bench_id]
            verdict = "met" if check(v, op, bound) else "**missed**"
            print(f"| {name} | {fmt_ns(v)} | {op} {bound:g} ns | {verdict} |")
        else:
            print(f"| {name} | - | {op} {bound:g} ns | - |")
    for bench_id, unit, units in SCALED:
        if bench_id in med and unit in med and med[unit] > 0:
            r = med[bench_id] / (units * med[unit])
            print(f"| `{bench_id}` / ({units:g} × `{unit}`) | {r:.3f} | (reported) | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
