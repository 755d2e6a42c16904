#!/usr/bin/env python3
"""SVG bar chart of the benches' criterion medians (log scale), for BENCHMARKS.md.

Usage: python3 benches/plot.py [CRITERION_DIR] > docs/benchmarks.svg
"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import IDS, criterion_dir, estimates  # noqa: E402


def fmt(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def main() -> None:
    root = criterion_dir()
    rows = []
    for bench_id in IDS:
        est = estimates(root, bench_id)
        if est is not None:
            rows.append((bench_id, est[0]))
    if not rows:
        sys.exit(f"no criterion results under {root}")
    width, left, bar_h, gap = 900, 260, 22, 8
    lo, hi = 1.0, max(ns for _, ns in rows) * 2
    scale = (width - left - 120) / (math.log10(hi) - math.log10(lo))
    height = 40 + len(rows) * (bar_h + gap) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="13">',
        f'<text x="{left}" y="20" font-weight="bold">criterion medians, log scale '
        '(one-way latency for pingpong ids)</text>',
    ]
    for i, (bench_id, ns) in enumerate(rows):
        y = 35 + i * (bar_h + gap)
        w = max(1.0, (math.log10(max(ns, lo)) - math.log10(lo)) * scale)
        floor = any(k in bench_id for k in ("futex", "spin", "eventfd", "iceoryx2", "memcpy"))
        colour = "#999999" if floor else "#3b7dd8"
        out.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{bench_id}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 16}">{fmt(ns)}</text>')
    for decade in range(0, int(math.log10(hi)) + 1):
        x = left + decade * scale
        label = fmt(10.0**decade)
        out.append(f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{height - 25}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" fill="#666">{label}</text>')
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
