//! Just enough of a SQL lexer to find stage references: strings, quoted identifiers and
//! comments are skipped as units so an `@` inside them is never taken for a stage.

/// One token with its byte span in the query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Whitespace or a comment.
    Trivia,
    /// `'...'`, with `''` as an escaped quote. `text` includes the quotes.
    String,
    /// `"..."` or `` `...` ``.
    QuotedIdent,
    /// A keyword or unquoted identifier.
    Word,
    /// `@name` followed by a path, as in `@stage/dir/*.parquet`.
    StageRef,
    /// `=>`
    Arrow,
    /// A number or any other single character.
    Other,
}

impl Token<'_> {
    pub fn is_word(&self, word: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(word)
    }

    pub fn is_symbol(&self, symbol: char) -> bool {
        self.kind == Kind::Other && self.text.len() == 1 && self.text.starts_with(symbol)
    }

    /// The value of a string literal, unescaped.
    pub fn string_value(&self) -> Option<String> {
        (self.kind == Kind::String).then(|| self.text[1..self.text.len() - 1].replace("''", "'"))
    }
}

/// Lexes `sql`. An unterminated string, identifier or comment is an error message.
pub fn lex(sql: &str) -> Result<Vec<Token<'_>>, String> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let kind = match c {
            b if b.is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                Kind::Trivia
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                Kind::Trivia
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let close = sql[i + 2..]
                    .find("*/")
                    .ok_or_else(|| format!("unterminated /* comment at byte {start}"))?;
                i = i + 2 + close + 2;
                Kind::Trivia
            }
            b'\'' => {
                i = quoted_end(bytes, i, b'\'')
                    .ok_or_else(|| format!("unterminated string literal at byte {start}"))?;
                Kind::String
            }
            b'"' | b'`' => {
                i = quoted_end(bytes, i, c)
                    .ok_or_else(|| format!("unterminated quoted identifier at byte {start}"))?;
                Kind::QuotedIdent
            }
            b'@' if bytes
                .get(i + 1)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') =>
            {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                // The path: everything up to whitespace or a delimiter. Multi-byte UTF-8 is kept.
                while i < bytes.len()
                    && !bytes[i].is_ascii_whitespace()
                    && !matches!(bytes[i], b'(' | b')' | b',' | b';' | b'\'' | b'"')
                {
                    i += 1;
                }
                Kind::StageRef
            }
            b'=' if bytes.get(i + 1) == Some(&b'>') => {
                i += 2;
                Kind::Arrow
            }
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                i += 1;
                Kind::Other
            }
        };
        tokens.push(Token {
            kind,
            text: &sql[start..i],
            start,
            end: i,
        });
    }
    Ok(tokens)
}

/// The index just past the closing quote of a quoted run starting at `start`, where a
/// doubled quote is an escape.
fn quoted_end(bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(Kind, &str)> {
        lex(sql)
            .unwrap()
            .into_iter()
            .filter(|t| t.kind != Kind::Trivia)
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn finds_stage_refs_outside_strings() {
        let toks =
            kinds("SELECT '@no', \"@no\" FROM @s/a/*.parquet -- @no\n /* @no */ WHERE x @> y");
        let refs: Vec<_> = toks.iter().filter(|(k, _)| *k == Kind::StageRef).collect();
        assert_eq!(refs, vec![&(Kind::StageRef, "@s/a/*.parquet")]);
    }

    #[test]
    fn path_stops_at_delimiters() {
        let toks = kinds("FROM @s/x.parquet(FILES => ('a'))");
        assert_eq!(toks[1], (Kind::StageRef, "@s/x.parquet"));
        assert_eq!(toks[2], (Kind::Other, "("));
        assert_eq!(toks[4], (Kind::Arrow, "=>"));
    }

    #[test]
    fn strings_unescape() {
        let toks = lex("'it''s'").unwrap();
        assert_eq!(toks[0].string_value().as_deref(), Some("it's"));
    }

    #[test]
    fn unterminated_is_an_error() {
        assert!(lex("SELECT 'abc").is_err());
        assert!(lex("SELECT \"abc").is_err());
        assert!(lex("SELECT /* abc").is_err());
    }
}
