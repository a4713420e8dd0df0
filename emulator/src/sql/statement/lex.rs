//! The statements' tokens: words (quoted or not), strings and symbols, each with its offset
//! for error messages.

use super::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// An identifier or keyword; `quoted` identifiers keep their case.
    Word {
        text: String,
        quoted: bool,
    },
    Str(String),
    Sym(char),
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub kind: Kind,
    pub offset: usize,
}

pub(super) fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let err = |offset, message: String| ParseError { offset, message };
    while i < chars.len() {
        let (offset, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '-' if chars.get(i + 1).map(|x| x.1) == Some('-') => {
                while i < chars.len() && chars[i].1 != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1).map(|x| x.1) == Some('*') => {
                i += 2;
                while i < chars.len()
                    && !(chars[i].1 == '*' && chars.get(i + 1).map(|x| x.1) == Some('/'))
                {
                    i += 1;
                }
                i += 2;
            }
            '\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    let Some(&(_, c)) = chars.get(i) else {
                        return Err(err(offset, "this string has no closing quote '".into()));
                    };
                    match c {
                        '\'' if chars.get(i + 1).map(|x| x.1) == Some('\'') => {
                            value.push('\'');
                            i += 2;
                        }
                        '\'' => {
                            i += 1;
                            break;
                        }
                        // Databend's escapes: \t \n \r \0, and \x for any other x.
                        '\\' if i + 1 < chars.len() => {
                            value.push(match chars[i + 1].1 {
                                't' => '\t',
                                'n' => '\n',
                                'r' => '\r',
                                '0' => '\0',
                                other => other,
                            });
                            i += 2;
                        }
                        c => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token {
                    kind: Kind::Str(value),
                    offset,
                });
            }
            '"' | '`' => {
                let close = c;
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j].1 != close {
                    j += 1;
                }
                if j == chars.len() {
                    return Err(err(offset, format!("this name has no closing {close}")));
                }
                let name: String = chars[start..j].iter().map(|x| x.1).collect();
                tokens.push(Token {
                    kind: Kind::Word {
                        text: name,
                        quoted: true,
                    },
                    offset,
                });
                i = j + 1;
            }
            // A number is a word too: only option values (SKIP_HEADER = 1) take one.
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].1.is_ascii_alphanumeric() || matches!(chars[i].1, '_' | '$'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().map(|x| x.1).collect();
                tokens.push(Token {
                    kind: Kind::Word {
                        text: word,
                        quoted: false,
                    },
                    offset,
                });
            }
            '=' | '(' | ')' | ',' => {
                tokens.push(Token {
                    kind: Kind::Sym(c),
                    offset,
                });
                i += 1;
            }
            c => return Err(err(offset, format!("unexpected {c:?}"))),
        }
    }
    Ok(tokens)
}

/// The length of the whitespace and comments before the first token.
pub(super) fn leading_comments(text: &str) -> usize {
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            return text.len() - rest.len();
        }
    }
}

pub(super) fn describe(kind: &Kind) -> String {
    match kind {
        Kind::Word { text, .. } => text.clone(),
        Kind::Str(s) => format!("'{s}'"),
        Kind::Sym(c) => format!("'{c}'"),
    }
}
