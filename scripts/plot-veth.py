#!/usr/bin/python3
"""Bar chart of a veth benchmark run: delivered Mpps per scenario and frame size.

Usage: scripts/plot-veth.py RESULTS.csv OUT.png
RESULTS.csv is what `scripts/bench-veth.sh --csv FILE` writes (one row per run);
the chart shows the median of the runs, with every run as a dot.
"""
import csv
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"raw": "raw veth -> XDP_DROP", "eipd": "eipd (AF_XDP)", "linux": "Linux nftables + vxlan"}
COLORS = {"raw": "#9e9e9e", "eipd": "#1f77b4", "linux": "#ff7f0e"}


def main(src: str, out: str) -> None:
    runs = defaultdict(list)
    with open(src, newline="") as f:
        for row in csv.DictReader(f):
            runs[(row["scenario"], int(row["frame_bytes"]))].append(float(row["delivered_pps"]) / 1e6)
    sizes = sorted({size for _, size in runs})
    scenarios = [s for s in ("raw", "eipd", "linux") if any(k[0] == s for k in runs)]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    width = 0.8 / len(scenarios)
    for i, scen in enumerate(scenarios):
        xs, ys = [], []
        for j, size in enumerate(sizes):
            values = runs.get((scen, size), [])
            if not values:
                continue
            x = j + (i - (len(scenarios) - 1) / 2) * width
            median = statistics.median(values)
            xs.append(x)
            ys.append(median)
            ax.scatter([x] * len(values), values, s=8, color="black", zorder=3)
            ax.text(x, median, f"{median:.2f}", ha="center", va="bottom", fontsize=8)
        ax.bar(xs, ys, width=width * 0.95, color=COLORS[scen], label=LABELS[scen])
    ax.set_xticks(range(len(sizes)), [f"{s}-byte frames" for s in sizes])
    ax.set_ylabel("delivered Mpps (median, dots: runs)")
    ax.set_title("Same testbed, same generator, one forwarding core")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_ylim(0, max(max(v) for v in runs.values()) * 1.2)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
