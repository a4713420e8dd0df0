//! Splitting a script into statements at `;`, outside quotes and comments, keeping where
//! each starts so errors can point at a line and column.

/// One statement's text and its byte offset in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub offset: usize,
}

/// Splits `script` into statements. Empty statements (and comment-only ones) are dropped.
/// The last statement needs no `;`. `complete` says whether the script ends outside a quote
/// or comment and, if `need_semicolon`, with a `;`: the prompt uses it to ask for more lines.
pub fn split(script: &str) -> (Vec<Piece>, bool) {
    let bytes = script.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut open: Option<&[u8]> = None;
    while i < bytes.len() {
        if let Some(close) = open {
            if bytes[i..].starts_with(close) {
                // '' inside a string is an escaped quote, not the end.
                if close == b"'" && bytes.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                i += close.len();
                open = None;
                continue;
            }
            if close == b"'" && bytes[i] == b'\\' {
                i += 2;
                continue;
            }
            i += 1;
            continue;
        }
        match bytes[i] {
            b'\'' => open = Some(b"'"),
            b'"' => open = Some(b"\""),
            b'`' => open = Some(b"`"),
            b'-' if bytes.get(i + 1) == Some(&b'-') => open = Some(b"\n"),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                open = Some(b"*/");
                i += 1;
            }
            b';' => {
                push(&mut pieces, script, start, i);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let tail_blank = is_blank(&script[start.min(script.len())..]);
    let complete = matches!(open, None | Some(b"\n")) && tail_blank;
    push(&mut pieces, script, start, script.len());
    (pieces, complete)
}

fn push(pieces: &mut Vec<Piece>, script: &str, start: usize, end: usize) {
    let text = &script[start..end];
    if is_blank(text) {
        return;
    }
    let lead = text.len() - text.trim_start().len();
    pieces.push(Piece {
        text: text.trim().to_string(),
        offset: start + lead,
    });
}

/// Whether text is only whitespace and comments.
pub fn is_blank(text: &str) -> bool {
    let mut rest = text.trim_start();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            match after.split_once("*/") {
                Some((_, r)) => rest = r.trim_start(),
                None => return true,
            }
        } else {
            return false;
        }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_column(script: &str, offset: usize) -> (usize, usize) {
    let before = &script[..offset.min(script.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str) -> Vec<String> {
        split(script).0.into_iter().map(|p| p.text).collect()
    }

    #[test]
    fn splits_outside_quotes_and_comments() {
        assert_eq!(
            texts("SELECT 1; SELECT 'a;b'; -- c;\nSELECT \"x;\" /* ; */;  "),
            vec!["SELECT 1", "SELECT 'a;b'", "-- c;\nSELECT \"x;\" /* ; */"]
        );
        assert_eq!(texts("SELECT 'it''s;'"), vec!["SELECT 'it''s;'"]);
        assert_eq!(texts(" ; -- only a comment\n;"), Vec::<String>::new());
    }

    #[test]
    fn completeness_asks_for_more_lines() {
        assert!(split("SELECT 1;").1);
        assert!(!split("SELECT 1").1);
        assert!(!split("SELECT 'a;").1);
        assert!(split("SELECT 1; -- done").1);
    }

    #[test]
    fn offsets_become_lines_and_columns() {
        let script = "SELECT 1;\n  DROP STAGE x;";
        let (pieces, _) = split(script);
        assert_eq!(line_column(script, pieces[1].offset), (2, 3));
    }
}
