//! Function names for a trap in a stripped component.
//!
//! `build_components` strips the `name` section of a component's main core module
//! (`scripts/lib/wasm_strip.py`: a fifth of the stage query component and of its compiled
//! artifact) and keeps the named original beside it as `NAME.names.wasm`. wasmtime prints a
//! frame of the stripped module as `<unknown>!<wasm function 1234>`; [`name_frames`] puts the
//! demangled name from the named copy in its place. The copy is read only when a trap is
//! reported. Function indices are the same in both files: only the name section differs.
//! Without a copy, or with one that cannot be read, the report stays as wasmtime wrote it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The named copy of a stripped component: `NAME.names.wasm` beside `NAME.wasm`.
pub fn named_copy(component: &Path) -> PathBuf {
    component.with_extension("names.wasm")
}

/// `report` (a trap's backtrace) with each `<wasm function N>` of the stripped main module
/// named from the copy beside `component`.
pub(crate) fn name_frames(report: &str, component: &Path) -> String {
    const FRAME: &str = "<unknown>!<wasm function ";
    if !report.contains(FRAME) {
        return report.to_string();
    }
    let Ok(named) = std::fs::read(named_copy(component)) else {
        return report.to_string();
    };
    let names = main_module_names(&named);
    let mut out = String::with_capacity(report.len());
    let mut rest = report;
    while let Some(at) = rest.find(FRAME) {
        let after = &rest[at + FRAME.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let name = after[..digits]
            .parse::<u32>()
            .ok()
            .filter(|_| after[digits..].starts_with('>'))
            .and_then(|index| names.get(&index));
        match name {
            Some(name) => {
                out.push_str(&rest[..at]);
                out.push_str(&format!("<unknown>!{:#}", rustc_demangle::demangle(name)));
                rest = &after[digits + 1..];
            }
            None => {
                out.push_str(&rest[..at + FRAME.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The function names of the core module with the most of them: a component's main module
/// (the others are wit-component's small shims, which keep their names).
fn main_module_names(b: &[u8]) -> HashMap<u32, String> {
    let mut modules = Vec::new();
    core_modules(b, 0, b.len(), &mut modules);
    modules
        .into_iter()
        .map(|(start, end)| {
            let mut names = HashMap::new();
            for (id, s, e) in sections(b, start + 8, end) {
                if id == 0 {
                    function_names(&b[s..e], &mut names);
                }
            }
            names
        })
        .max_by_key(HashMap::len)
        .unwrap_or_default()
}

/// The core modules in the module or component at `b[start..end]`, nested ones included.
fn core_modules(b: &[u8], start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    // The header's layer byte: 0 for a core module, 1 for a component.
    match b.get(start + 6) {
        Some(0) => out.push((start, end)),
        Some(1) => {
            for (id, s, e) in sections(b, start + 8, end) {
                match id {
                    1 => out.push((s, e)),
                    4 => core_modules(b, s, e, out),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// The sections of `b[start..end]` as (id, body start, body end); stops at the first that
/// does not fit.
fn sections(b: &[u8], start: usize, end: usize) -> impl Iterator<Item = (u8, usize, usize)> + '_ {
    let end = end.min(b.len());
    let mut i = start;
    std::iter::from_fn(move || {
        let id = *b.get(i).filter(|_| i < end)?;
        let mut j = i + 1;
        let len = usize::try_from(leb(b, &mut j)?).ok()?;
        let body_end = j.checked_add(len).filter(|&e| e <= end)?;
        i = body_end;
        Some((id, j, body_end))
    })
}

/// The function names subsection of a custom section named `name`.
fn function_names(section: &[u8], names: &mut HashMap<u32, String>) {
    let mut i = 0;
    let Some(n) = leb(section, &mut i).and_then(|n| usize::try_from(n).ok()) else {
        return;
    };
    if section.get(i..i.saturating_add(n)) != Some(b"name".as_slice()) {
        return;
    }
    i += n;
    for (id, s, e) in sections(section, i, section.len()) {
        if id != 1 {
            continue;
        }
        let sub = &section[s..e];
        let mut j = 0;
        let Some(count) = leb(sub, &mut j) else {
            return;
        };
        for _ in 0..count {
            let (Some(index), Some(len)) = (leb(sub, &mut j), leb(sub, &mut j)) else {
                return;
            };
            let Some(name) = usize::try_from(len)
                .ok()
                .and_then(|len| sub.get(j..j.checked_add(len)?))
            else {
                return;
            };
            j += name.len();
            if let Ok(index) = u32::try_from(index) {
                names.insert(index, String::from_utf8_lossy(name).into_owned());
            }
        }
    }
}

/// An unsigned LEB128 at `b[*i..]`, advancing `*i`.
fn leb(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uleb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(byte | if n > 0 { 0x80 } else { 0 });
            if n == 0 {
                return;
            }
        }
    }

    fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        uleb(body.len(), out);
        out.extend_from_slice(body);
    }

    /// A core module whose only section is a name section naming `names`.
    fn module(names: &[(u32, &str)]) -> Vec<u8> {
        let mut sub = Vec::new();
        uleb(names.len(), &mut sub);
        for (index, name) in names {
            uleb(*index as usize, &mut sub);
            uleb(name.len(), &mut sub);
            sub.extend_from_slice(name.as_bytes());
        }
        let mut custom = Vec::new();
        uleb(4, &mut custom);
        custom.extend_from_slice(b"name");
        section(1, &sub, &mut custom);
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        section(0, &custom, &mut m);
        m
    }

    #[test]
    fn frames_are_named_from_the_main_module_of_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let component = dir.path().join("f.wasm");
        // A component holding a small shim module and the main module.
        let mut c = b"\0asm\x0d\0\x01\0".to_vec();
        section(1, &module(&[(0, "shim")]), &mut c);
        section(
            1,
            &module(&[
                (3, "_ZN4core9panicking9panic_fmt17h0123456789abcdefE"),
                (7, "main"),
            ]),
            &mut c,
        );
        std::fs::write(named_copy(&component), &c).unwrap();
        let report = "  0: 0x10 - <unknown>!<wasm function 3>\n  1: 0x20 - <unknown>!<wasm function 9>\n  2: 0x30 - wit-component:shim!indirect\n";
        assert_eq!(
            name_frames(report, &component),
            "  0: 0x10 - <unknown>!core::panicking::panic_fmt\n  1: 0x20 - <unknown>!<wasm function 9>\n  2: 0x30 - wit-component:shim!indirect\n"
        );
    }

    #[test]
    fn without_a_readable_copy_the_report_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let component = dir.path().join("f.wasm");
        let report = "  0: 0x10 - <unknown>!<wasm function 3>";
        assert_eq!(name_frames(report, &component), report);
        // Not a wasm file at all, or one cut short: still unchanged, never a panic.
        for junk in [b"not wasm".to_vec(), module(&[(3, "x")])[..12].to_vec()] {
            std::fs::write(named_copy(&component), junk).unwrap();
            assert_eq!(name_frames(report, &component), report);
        }
    }
}
