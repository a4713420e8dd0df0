"""Where the stage query guest spends its CPU on host-bench's full scan, beside native.

    guest_profile.py PERF_SCRIPT ARTIFACT NAMED_COMPONENT [TOP]

PERF_SCRIPT is `perf script -F comm,tid,time,period,event,ip,sym,dso --show-mmap-events`
of a `perf record -e cpu-clock` around `host-bench`; ARTIFACT the compiled `.cwasm` the run
loaded (the host maps it from a sealed memfd named `xstage-artifact`); NAMED_COMPONENT
`xstage_component.names.wasm`. A sample in that mapping is placed with `nm` of the artifact
(`wasm[M]::function[F]`) and named from the component's name section; other samples in the
host-bench binary are named by perf. Prints the guest's CPU, the crates of the guest and of
the native side from the first guest sample of the scan on, and the top functions of each.
"""

import bisect
import collections
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import wasm_crates as wc  # noqa: E402

MMAP = re.compile(r"PERF_RECORD_MMAP2 .*\[(0x[0-9a-f]+)\(0x[0-9a-f]+\) @ 0x[0-9a-f]+.*r-xp /memfd:xstage-artifact")
SAMPLE = re.compile(r"\s*\S+\s+\d+\s+([\d.]+):\s+(\d+)\s+\S+\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def artifact_symbols(path):
    syms = []
    for line in subprocess.run(["nm", "-n", path], capture_output=True, text=True, check=True).stdout.splitlines():
        p = line.split(" ", 2)
        if len(p) == 3:
            syms.append((int(p[0], 16), p[2]))
    return syms


def module_names(path):
    b = open(path, "rb").read()
    names = []
    for s, e in wc.core_modules(b, 0, len(b)):
        n = {}
        for sid, ss, se in wc.sections(b, s + 8, e):
            if sid == 0:
                n.update(wc.function_names(b, ss, se))
        names.append(n)
    return names


def native_crate(sym):
    crates = re.findall(r"([a-z_][a-z0-9_]*)::", sym.replace("<", "").replace("&", ""))
    return crates[0] if crates else "(not Rust)"


def main():
    perf, artifact, named = sys.argv[1:4]
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    syms = artifact_symbols(artifact)
    addrs = [a for a, _ in syms]
    names = module_names(named)
    base, samples = None, []
    for line in open(perf, errors="replace"):
        m = MMAP.search(line)
        if m:
            base = int(m.group(1), 16)
            continue
        m = SAMPLE.match(line)
        if m:
            guest = "xstage-artifact" in m.group(5)
            samples.append((float(m.group(1)), int(m.group(2)), int(m.group(3), 16), m.group(4), m.group(5), guest, base))
    guest_times = [t for t, _, _, _, _, g, _ in samples if g]
    if not guest_times:
        sys.exit("no sample in the guest's code: was the artifact mapped from a memfd named xstage-artifact?")
    # The 200 rejected events come first and take milliseconds; the scan starts with the
    # guest's first sample after them, 5% of the way into its samples.
    start = guest_times[len(guest_times) // 20] - 2.0
    guest_ns = sum(p for _, p, _, _, _, g, _ in samples if g)
    crates = {"guest": collections.Counter(), "native": collections.Counter()}
    funcs = {"guest": collections.Counter(), "native": collections.Counter()}
    for t, _, ip, sym, dso, guest, b in samples:
        if t < start:
            continue
        if guest:
            i = bisect.bisect_right(addrs, ip - b) - 1
            name = syms[i][1] if i >= 0 else "?"
            m = re.match(r"wasm\[(\d+)\]::function\[(\d+)\]", name)
            if m and int(m.group(1)) < len(names):
                name = names[int(m.group(1))].get(int(m.group(2)), name)
            crates["guest"][wc.crate_of(name)] += 1
            funcs["guest"][name] += 1
        elif dso.endswith("host-bench"):
            crates["native"][native_crate(sym)] += 1
            funcs["native"][sym] += 1
        else:
            crates["native"]["[" + dso.rsplit("/", 1)[-1] + "]"] += 1
    g, n = sum(crates["guest"].values()), sum(crates["native"].values())
    print(f"guest CPU over the run: {guest_ns / 1e9:.3f} s")
    print(f"samples from the scan on: guest {g}, native side and host {n}")
    print(f"{'crate':36s} {'guest':>7s} {'native':>7s} {'ratio':>6s}")
    both = crates["guest"] + crates["native"]
    for c, _ in both.most_common(top):
        w, v = crates["guest"][c], crates["native"][c]
        print(f"{c:36s} {w:7d} {v:7d} {(w / v if v else float('inf')):6.2f}")
    for side in ("guest", "native"):
        total = sum(funcs[side].values()) or 1
        print(f"--- {side}: top functions")
        for f, c in funcs[side].most_common(top):
            print(f"{100 * c / total:5.1f}% {f[:140]}")


if __name__ == "__main__":
    main()
