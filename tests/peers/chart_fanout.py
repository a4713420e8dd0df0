"""Draws the fan-out benchmark's wall time against the number of workers, per query, with
DuckDB alone as a horizontal line: `chart_fanout.py fanout.json OUT_DIR` writes fanout.png."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main():
    data = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ns = set()
    for query, marker, color in (("Q1", "o", "tab:blue"), ("Q6", "s", "tab:orange")):
        points = sorted(
            (r["n"], r["median_s"])
            for r in data["results"]
            if r["query"] == query and r["path"] == "xstage" and "median_s" in r
        )
        ns.update(n for n, _ in points)
        if points:
            ax.plot([n for n, _ in points], [s for _, s in points], marker=marker, color=color,
                    label=f"xstage {query}")
        duck = [r["median_s"] for r in data["results"] if r["query"] == query and r["path"] == "duckdb"]
        if duck:
            ax.axhline(duck[0], linestyle="--", linewidth=1, color=color, label=f"DuckDB {query} (alone)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted(ns), [str(n) for n in sorted(ns)])
    ax.set_xlabel("workers (N)")
    ax.set_ylabel("median wall time (s)")
    ax.set_title(
        f"TPC-H lineitem SF {data['scale']:g} ({data['parquet_bytes'] / 1e9:.2f} GB of Parquet)\n"
        f"{data['mbps_per_environment']:g} MB/s per environment, {data['latency_ms']} ms first byte",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}/fanout.png", dpi=120)


main()
