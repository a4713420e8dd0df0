"""One PNG per benchmark query: bytes read and median wall time per path, with the
query's physical minimum as a line. Usage: chart.py results.json OUT_DIR"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results_path, out_dir):
    with open(results_path) as f:
        results = json.load(f)
    queries = {}
    for r in results["results"]:
        queries.setdefault(r["query"], []).append(r)
    for query, rows in queries.items():
        paths = [r["path"] for r in rows]
        colors = ["tab:blue" if r["path"] in ("native", "wasi", "emulator") else "tab:gray" for r in rows]
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
        fig.suptitle(f'{rows[0]["label"]} ({results["runs"]} runs)')
        left.bar(paths, [r["bytes"] / 1e6 for r in rows], color=colors)
        left.axhline(rows[0]["minimum"] / 1e6, color="tab:red", linestyle="--", label="physical minimum")
        left.set_ylabel("MB read")
        left.set_yscale("log")
        left.legend(loc="upper left", fontsize=8)
        right.bar(paths, [r["median_ms"] if r["error"] is None else 0 for r in rows], color=colors)
        right.set_ylabel("median wall time, ms")
        for ax in (left, right):
            ax.tick_params(axis="x", labelrotation=30, labelsize=8)
            for r, label in zip(rows, ax.get_xticklabels()):
                if r["error"] is not None:
                    label.set_color("tab:red")
        fig.tight_layout()
        fig.savefig(f"{out_dir}/{query}.png", dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
