"""Code bytes per crate in a wasm component or core module, from its `name` section.

usage: python3 wasm_crates.py FILE.wasm [TOP]

Walks the component's core modules, sizes each function body of their code sections, and
charges it to the crate its (legacy-mangled) name starts with; `<T as Trait>::f` goes to T's
crate. Generic code lands in the crate that defines the function (`core::ptr::drop_in_place`
of a DataFusion type is `core`'s), so read the figures as "where the bytes are", not "whose
fault". A stripped module (no `name` section) has everything under `(unnamed)`.
"""
import collections
import re
import sys


SECTION_KINDS = {0: "other custom sections", 10: "code", 11: "data"}


def leb(b, i):
    value = shift = 0
    while True:
        byte = b[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def sections(b, start, end):
    i = start
    while i < end:
        sid = b[i]
        n, i = leb(b, i + 1)
        yield sid, i, i + n
        i += n


def core_modules(b, start, end):
    # The header's layer field: 0 for a core module, 1 for a component.
    if b[start + 6] == 0:
        yield start, end
        return
    for sid, s, e in sections(b, start + 8, end):
        if sid == 1:  # core module
            yield s, e
        elif sid == 4:  # nested component
            yield from core_modules(b, s, e)


def imported_functions(b, s, e):
    count, i = leb(b, s)
    functions = 0
    for _ in range(count):
        for _ in range(2):  # module and field names
            n, i = leb(b, i)
            i += n
        kind = b[i]
        i += 1
        if kind == 0:  # function: type index
            _, i = leb(b, i)
            functions += 1
        elif kind == 1:  # table: reference type, limits
            i += 1
            flags, i = leb(b, i)
            _, i = leb(b, i)
            if flags & 1:
                _, i = leb(b, i)
        elif kind == 2:  # memory: limits
            flags, i = leb(b, i)
            _, i = leb(b, i)
            if flags & 1:
                _, i = leb(b, i)
        elif kind == 3:  # global: value type, mutability
            i += 2
        elif kind == 4:  # tag
            i += 1
            _, i = leb(b, i)
    return functions


def function_names(b, s, e):
    n, i = leb(b, s)
    if b[i : i + n] != b"name":
        return {}
    i += n
    names = {}
    while i < e:
        sub = b[i]
        n, i = leb(b, i + 1)
        end = i + n
        if sub == 1:  # function names
            count, j = leb(b, i)
            for _ in range(count):
                index, j = leb(b, j)
                n, j = leb(b, j)
                names[index] = b[j : j + n].decode("utf-8", "replace")
                j += n
        i = end
    return names


def crate_of(name):
    if not name:
        return "(unnamed)"
    m = re.match(r"_ZN(\d+)(\S+)", name)
    if not m:
        return "(not Rust)"
    first = m.group(2)[: int(m.group(1))]
    if first.startswith("_$LT$"):  # <T as Trait>::f: T's crate
        m = re.match(r"_\$LT\$(?:\$RF\$|\$u5b\$|mut\$u20\$|dyn\$u20\$|\$BP\$|const\$u20\$)*([a-z_0-9]+?)\.\.", first)
        return m.group(1) if m else "(impl)"
    return first


def main():
    b = open(sys.argv[1], "rb").read()
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    per_crate = collections.Counter()
    kinds = collections.Counter()
    for s, e in core_modules(b, 0, len(b)):
        imports, bodies, names = 0, [], {}
        for sid, ss, se in sections(b, s + 8, e):
            kinds[SECTION_KINDS.get(sid, "other")] += se - ss
            if sid == 0:
                n, i = leb(b, ss)
                if b[i : i + n] == b"name":
                    kinds["name"] += se - ss
                    kinds[SECTION_KINDS[0]] -= se - ss
            if sid == 2:
                imports = imported_functions(b, ss, se)
            elif sid == 10:
                count, i = leb(b, ss)
                for _ in range(count):
                    n, i = leb(b, i)
                    bodies.append(n)
                    i += n
            elif sid == 0:
                names.update(function_names(b, ss, se))
        for k, size in enumerate(bodies):
            per_crate[crate_of(names.get(imports + k, ""))] += size
    total = sum(per_crate.values())
    print(
        f"{len(b) / 1e6:.1f} MB: "
        + ", ".join(f"{kind} {size / 1e6:.1f} MB" for kind, size in kinds.most_common() if size >= 50_000)
    )
    print(f"code {total / 1e6:.1f} MB by crate:")
    for crate, size in per_crate.most_common(top):
        print(f"  {size / 1e6:7.2f} MB {100 * size / total:5.1f}%  {crate}")


if __name__ == "__main__":
    main()
