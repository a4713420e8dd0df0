//! Glob patterns in stage paths (`*`, `?`, `[..]`, `**`), compiled to anchored regexes over
//! stage-relative keys.

use regex::{Regex, RegexBuilder};

use crate::error::{FunctionError, Result};

/// Whether `path` uses glob syntax.
pub fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Compiles a glob to a regex that must match the whole stage-relative key.
///
/// `*` and `?` stay within one path segment; `**` crosses segments, and `**/` also matches
/// no directory at all, so `a/**/x.parquet` matches `a/x.parquet`.
pub fn compile(glob: &str) -> Result<Regex> {
    let mut re = String::with_capacity(glob.len() * 2 + 2);
    re.push('^');
    let chars: Vec<char> = glob.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    re.push_str("(?:.*/)?");
                    i += 3;
                } else {
                    re.push_str(".*");
                    i += 2;
                }
                continue;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                let close = chars[i + 1..]
                    .iter()
                    .enumerate()
                    .skip(1) // `[]...]` has a literal `]` first
                    .find(|(_, c)| **c == ']')
                    .map(|(j, _)| i + 1 + j)
                    .ok_or_else(|| {
                        FunctionError::invalid_query(format!(
                            "glob {glob:?} has a `[` with no closing `]`"
                        ))
                    })?;
                let mut body: String = chars[i + 1..close].iter().collect();
                if let Some(rest) = body.strip_prefix('!') {
                    body = format!("^{rest}");
                }
                re.push('[');
                for c in body.chars() {
                    if matches!(c, '\\' | '[' | '&' | '~') {
                        re.push('\\');
                    }
                    re.push(c);
                }
                re.push(']');
                i = close + 1;
                continue;
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    RegexBuilder::new(&re)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| FunctionError::invalid_query(format!("glob {glob:?} is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_stays_in_segment() {
        let re = compile("data/*.parquet").unwrap();
        assert!(re.is_match("data/a.parquet"));
        assert!(!re.is_match("data/sub/a.parquet"));
        assert!(!re.is_match("data/a.parquet.tmp"));
    }

    #[test]
    fn double_star_crosses_segments() {
        let re = compile("data/**/*.parquet").unwrap();
        assert!(re.is_match("data/a.parquet"));
        assert!(re.is_match("data/x/y/a.parquet"));
        assert!(!re.is_match("other/a.parquet"));
    }

    #[test]
    fn classes_and_question_mark() {
        let re = compile("part-[0-9]?.parquet").unwrap();
        assert!(re.is_match("part-12.parquet"));
        assert!(!re.is_match("part-a1.parquet"));
        let neg = compile("[!a]x").unwrap();
        assert!(neg.is_match("bx"));
        assert!(!neg.is_match("ax"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        let re = compile("a+b(1).parquet").unwrap();
        assert!(re.is_match("a+b(1).parquet"));
        assert!(!re.is_match("aab1.parquet"));
    }

    #[test]
    fn unclosed_class_is_an_error() {
        assert!(compile("a[b").is_err());
    }
}
