"""Strip the `name` section from built components, keeping a named copy for their traps.

usage: python3 wasm_strip.py DIR NAME...

DIR is a cargo output directory (`target/wasm32-wasip2/wasm`), NAME a component's stem
(`xstage_component`). Cargo links each component into DIR/deps/NAME.wasm and hard-links it
to DIR/NAME.wasm on every build, fresh or not. This rewrites the deps file without the name
section of its main core module (the one with the most code; wit-component's small shims
keep theirs), the same bytes otherwise, so function indices and code offsets do not move,
and links DIR/NAME.wasm to it again. Cargo's next build links the stripped file too, until
an edit makes it link a new one. The named original is kept as DIR/NAME.names.wasm: the host
names a trap's frames from it (host/src/names.rs).

The names are a fifth of the stage query component (11 MB of 55) and of its compiled
artifact; Cranelift's compile takes as long with them as without (BENCHMARKS.md, "Size and
start-up"). A file already stripped is left alone, so running this twice changes nothing.
"""
import os
import sys

from wasm_crates import core_modules, leb, sections


def uleb(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def is_name_section(b, s):
    n, i = leb(b, s)
    return b[i : i + n] == b"name"


def name_section(b, start, end):
    """The size of the name section of the core module at b[start:end], or 0."""
    for sid, s, e in sections(b, start + 8, end):
        if sid == 0 and is_name_section(b, s):
            return e - s
    return 0


def code_size(b, start, end):
    return sum(e - s for sid, s, e in sections(b, start + 8, end) if sid == 10)


def strip(b, start, end, target):
    """The module or component at b[start:end] without the name section of the core module
    that starts at `target`."""
    out = bytearray(b[start : start + 8])
    for sid, s, e in sections(b, start + 8, end):
        if start == target and sid == 0 and is_name_section(b, s):
            continue
        # A component's nested core modules (1) and components (4).
        body = strip(b, s, e, target) if b[start + 6] == 1 and sid in (1, 4) else b[s:e]
        out.append(sid)
        out += uleb(len(body))
        out += body
    return bytes(out)


def replace(path, data, like):
    """Write `data` to `path` through a new file, with `like`'s times (cargo's freshness)."""
    tmp = path + ".strip-tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    st = os.stat(like)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: wasm_strip.py DIR NAME...")
    out_dir = sys.argv[1]
    for name in sys.argv[2:]:
        linked = os.path.join(out_dir, "deps", name + ".wasm")
        uplifted = os.path.join(out_dir, name + ".wasm")
        named = os.path.join(out_dir, name + ".names.wasm")
        b = open(linked, "rb").read()
        _, main, main_end = max((code_size(b, s, e), s, e) for s, e in core_modules(b, 0, len(b)))
        if name_section(b, main, main_end) == 0:
            print(f"{name}.wasm: its main module has no name section (already stripped)")
            continue
        stripped = strip(b, 0, len(b), main)
        replace(named, b, linked)
        replace(linked, stripped, linked)
        tmp = uplifted + ".strip-tmp"
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.link(linked, tmp)
        os.replace(tmp, uplifted)
        print(
            f"{name}.wasm: {len(b) / 1e6:.1f} MB -> {len(stripped) / 1e6:.1f} MB without names; "
            f"named copy {named}"
        )


if __name__ == "__main__":
    main()
