//! Databend's connection and stage statements, parsed with positions for error messages.
//! Queries (`SELECT`, `WITH`, `LIST`) are not parsed here: they go to the function as text,
//! and the function's own SQL layer reads them.
//!
//! ```sql
//! CREATE [OR REPLACE] CONNECTION [IF NOT EXISTS] name STORAGE_TYPE = 's3'
//!     ROLE_ARN = '...' [EXTERNAL_ID = '...'] [REGION = '...'] [ENDPOINT_URL = '...']
//! CREATE [OR REPLACE] STAGE [IF NOT EXISTS] name URL = 's3://bucket/prefix/'
//!     CONNECTION = (CONNECTION_NAME = 'name' | ROLE_ARN = '...' ...)
//!     [FILE_FORMAT = (TYPE = CSV | TSV | NDJSON | PARQUET [option = value ...])]
//!     [COMMENT = '...']
//! SHOW CONNECTIONS | SHOW STAGES | DESC[RIBE] STAGE name | DESC[RIBE] CONNECTION name
//! DROP CONNECTION [IF EXISTS] name | DROP STAGE [IF EXISTS] name
//! ```

use std::collections::BTreeMap;

/// A statement, with names normalised (unquoted identifiers are lower-cased, as Databend does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    CreateConnection {
        name: String,
        mode: CreateMode,
        /// Option keys upper-cased, values as written.
        options: BTreeMap<String, String>,
    },
    CreateStage {
        name: String,
        mode: CreateMode,
        url: String,
        connection: StageConnection,
        /// `FILE_FORMAT = (...)`: option names upper-cased, values as written (checked).
        file_format: Option<BTreeMap<String, String>>,
        comment: Option<String>,
    },
    ShowConnections,
    ShowStages,
    DescConnection(String),
    DescStage(String),
    DropConnection {
        name: String,
        if_exists: bool,
    },
    DropStage {
        name: String,
        if_exists: bool,
    },
    /// A query for the function, as written.
    Query(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Create,
    OrReplace,
    IfNotExists,
}

/// How a stage gets its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageConnection {
    Named(String),
    /// `CONNECTION = (ROLE_ARN = ... )`: options of a connection of its own.
    Inline(BTreeMap<String, String>),
}

/// A statement that could not be parsed: where (a byte offset in the statement) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

/// The options a connection may take.
pub const CONNECTION_OPTIONS: &[&str] = &[
    "STORAGE_TYPE",
    "ROLE_ARN",
    "EXTERNAL_ID",
    "REGION",
    "ENDPOINT_URL",
];
const KEY_OPTIONS: &[&str] = &[
    "ACCESS_KEY_ID",
    "SECRET_ACCESS_KEY",
    "SESSION_TOKEN",
    "SECURITY_TOKEN",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// An identifier or keyword; `quoted` identifiers keep their case.
    Word {
        text: String,
        quoted: bool,
    },
    Str(String),
    Sym(char),
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    offset: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
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

/// Parses one statement (without its `;`).
pub fn parse(text: &str) -> Result<Statement, ParseError> {
    let lead = leading_comments(text);
    let first = text[lead..]
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match first.as_str() {
        "SELECT" | "WITH" | "LIST" | "LS" | "VALUES" => {
            return Ok(Statement::Query(text.to_string()));
        }
        "CREATE" | "SHOW" | "DESC" | "DESCRIBE" | "DROP" => {}
        "" => {
            return Err(ParseError {
                offset: lead,
                message: "expected a statement".into(),
            });
        }
        other => {
            return Err(ParseError {
                offset: lead,
                message: format!(
                    "{other} is not supported here; xstage sql runs CREATE, DROP, SHOW and DESC of \
                     connections and stages, and SELECT and LIST queries on stages"
                ),
            });
        }
    }
    let mut p = Parser {
        tokens: lex(text)?,
        pos: 0,
        end: text.len(),
    };
    let statement = p.statement()?;
    if let Some(t) = p.tokens.get(p.pos) {
        return Err(ParseError {
            offset: t.offset,
            message: format!(
                "unexpected {} after the end of the statement",
                describe(&t.kind)
            ),
        });
    }
    Ok(statement)
}

/// The length of the whitespace and comments before the first token.
fn leading_comments(text: &str) -> usize {
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

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
}

fn describe(kind: &Kind) -> String {
    match kind {
        Kind::Word { text, .. } => text.clone(),
        Kind::Str(s) => format!("'{s}'"),
        Kind::Sym(c) => format!("'{c}'"),
    }
}

impl Parser {
    fn here(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |t| t.offset)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            offset: self.here(),
            message: message.into(),
        })
    }

    fn found(&self) -> String {
        self.tokens
            .get(self.pos)
            .map_or("the end of the statement".to_string(), |t| {
                describe(&t.kind)
            })
    }

    /// Consumes a keyword if it is next.
    fn keyword(&mut self, word: &str) -> bool {
        match self.tokens.get(self.pos) {
            Some(Token {
                kind:
                    Kind::Word {
                        text,
                        quoted: false,
                    },
                ..
            }) if text.eq_ignore_ascii_case(word) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn expect_keyword(&mut self, word: &str, hint: &str) -> Result<(), ParseError> {
        if self.keyword(word) {
            Ok(())
        } else {
            self.error(format!("expected {word}{hint}, found {}", self.found()))
        }
    }

    fn symbol(&mut self, c: char) -> bool {
        if matches!(self.tokens.get(self.pos), Some(Token { kind: Kind::Sym(s), .. }) if *s == c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_symbol(&mut self, c: char, context: &str) -> Result<(), ParseError> {
        if self.symbol(c) {
            Ok(())
        } else {
            self.error(format!("expected '{c}' {context}, found {}", self.found()))
        }
    }

    fn name(&mut self, what: &str) -> Result<String, ParseError> {
        match self.tokens.get(self.pos).map(|t| t.kind.clone()) {
            Some(Kind::Word { text, quoted }) => {
                self.pos += 1;
                let name = if quoted {
                    text
                } else {
                    text.to_ascii_lowercase()
                };
                if name.is_empty() {
                    return self.error(format!("the {what} name is empty"));
                }
                Ok(name)
            }
            _ => self.error(format!("expected the {what} name, found {}", self.found())),
        }
    }

    fn string(&mut self, key: &str) -> Result<String, ParseError> {
        match self.tokens.get(self.pos).map(|t| t.kind.clone()) {
            Some(Kind::Str(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => self.error(format!(
                "{key} takes a quoted value such as {key} = '...', found {}",
                self.found()
            )),
        }
    }

    fn statement(&mut self) -> Result<Statement, ParseError> {
        if self.keyword("CREATE") {
            let replace = self.keyword("OR") && {
                self.expect_keyword("REPLACE", " after CREATE OR")?;
                true
            };
            if self.keyword("CONNECTION") {
                let mode = self.mode(replace)?;
                let name = self.name("connection")?;
                let options = self.options(&name, None)?;
                return Ok(Statement::CreateConnection {
                    name,
                    mode,
                    options,
                });
            }
            if self.keyword("STAGE") {
                let mode = self.mode(replace)?;
                let name = self.name("stage")?;
                return self.stage(name, mode);
            }
            return self.error(format!(
                "expected CONNECTION or STAGE after CREATE, found {}",
                self.found()
            ));
        }
        if self.keyword("SHOW") {
            if self.keyword("CONNECTIONS") {
                return Ok(Statement::ShowConnections);
            }
            if self.keyword("STAGES") {
                return Ok(Statement::ShowStages);
            }
            return self.error(format!(
                "expected CONNECTIONS or STAGES after SHOW, found {}",
                self.found()
            ));
        }
        if self.keyword("DESC") || self.keyword("DESCRIBE") {
            if self.keyword("STAGE") {
                return Ok(Statement::DescStage(self.name("stage")?));
            }
            if self.keyword("CONNECTION") {
                return Ok(Statement::DescConnection(self.name("connection")?));
            }
            return self.error(format!(
                "expected STAGE or CONNECTION after DESC, found {}",
                self.found()
            ));
        }
        self.expect_keyword("DROP", "")?;
        let connection = if self.keyword("CONNECTION") {
            true
        } else if self.keyword("STAGE") {
            false
        } else {
            return self.error(format!(
                "expected CONNECTION or STAGE after DROP, found {}",
                self.found()
            ));
        };
        let if_exists = self.keyword("IF") && {
            self.expect_keyword("EXISTS", " after IF")?;
            true
        };
        Ok(if connection {
            Statement::DropConnection {
                name: self.name("connection")?,
                if_exists,
            }
        } else {
            Statement::DropStage {
                name: self.name("stage")?,
                if_exists,
            }
        })
    }

    fn mode(&mut self, replace: bool) -> Result<CreateMode, ParseError> {
        if self.keyword("IF") {
            self.expect_keyword("NOT", " after IF")?;
            self.expect_keyword("EXISTS", " after IF NOT")?;
            if replace {
                return self.error("OR REPLACE and IF NOT EXISTS cannot be used together");
            }
            return Ok(CreateMode::IfNotExists);
        }
        Ok(if replace {
            CreateMode::OrReplace
        } else {
            CreateMode::Create
        })
    }

    /// `KEY = 'value'` pairs of a connection, until the end or `)`.
    fn options(
        &mut self,
        connection: &str,
        closing: Option<char>,
    ) -> Result<BTreeMap<String, String>, ParseError> {
        let mut options = BTreeMap::new();
        loop {
            match self.tokens.get(self.pos).map(|t| t.kind.clone()) {
                None if closing.is_none() => break,
                Some(Kind::Sym(c)) if Some(c) == closing => break,
                Some(Kind::Sym(',')) => {
                    self.pos += 1;
                    continue;
                }
                Some(Kind::Word {
                    text,
                    quoted: false,
                }) => {
                    let key = text.to_ascii_uppercase();
                    if KEY_OPTIONS.contains(&key.as_str()) {
                        return self.error(format!(
                            "{key}: xstage connections hold a role to assume, never keys; \
                             remove {key} and give ROLE_ARN = '...' and EXTERNAL_ID = '...'"
                        ));
                    }
                    if !CONNECTION_OPTIONS.contains(&key.as_str()) {
                        return self.error(format!(
                            "unknown connection option {text}; the options are {}",
                            CONNECTION_OPTIONS.join(", ")
                        ));
                    }
                    if options.contains_key(&key) {
                        return self.error(format!("{key} is given twice"));
                    }
                    self.pos += 1;
                    self.expect_symbol('=', &format!("after {key}"))?;
                    let value = self.string(&key)?;
                    options.insert(key, value);
                }
                _ => {
                    return self.error(format!(
                        "expected a connection option such as ROLE_ARN = '...', found {}",
                        self.found()
                    ));
                }
            }
        }
        match options.get("STORAGE_TYPE") {
            None if closing.is_none() => {
                return self.error(format!("connection {connection} needs STORAGE_TYPE = 's3'"));
            }
            Some(t) if !t.eq_ignore_ascii_case("s3") => {
                return self.error(format!(
                    "STORAGE_TYPE '{t}' is not supported; xstage reads STORAGE_TYPE = 's3'"
                ));
            }
            _ => {}
        }
        if !options.contains_key("ROLE_ARN") {
            return self.error(format!(
                "connection {connection} needs ROLE_ARN = 'arn:aws:iam::<account>:role/<name>', the role xstage assumes"
            ));
        }
        Ok(options)
    }

    fn stage(&mut self, name: String, mode: CreateMode) -> Result<Statement, ParseError> {
        let mut url = None;
        let mut connection = None;
        let mut comment = None;
        let mut file_format = None;
        while self.pos < self.tokens.len() {
            let key_offset = self.here();
            let key = match self.tokens.get(self.pos).map(|t| t.kind.clone()) {
                Some(Kind::Word {
                    text,
                    quoted: false,
                }) => text.to_ascii_uppercase(),
                _ => {
                    return self.error(format!(
                        "expected URL, CONNECTION, FILE_FORMAT or COMMENT, found {}",
                        self.found()
                    ));
                }
            };
            self.pos += 1;
            self.expect_symbol('=', &format!("after {key}"))?;
            match key.as_str() {
                "URL" => url = Some(self.string("URL")?),
                "COMMENT" => comment = Some(self.string("COMMENT")?),
                "CONNECTION" => {
                    self.expect_symbol('(', "to open CONNECTION = (CONNECTION_NAME = '...')")?;
                    if self.keyword("CONNECTION_NAME") {
                        self.expect_symbol('=', "after CONNECTION_NAME")?;
                        let value = self.string("CONNECTION_NAME")?;
                        connection = Some(StageConnection::Named(value.to_ascii_lowercase()));
                    } else {
                        connection = Some(StageConnection::Inline(self.options(&name, Some(')'))?));
                    }
                    self.expect_symbol(')', "to close CONNECTION = (...)")?;
                }
                "FILE_FORMAT" => file_format = Some(self.file_format()?),
                other => {
                    return Err(ParseError {
                        offset: key_offset,
                        message: format!(
                            "unknown stage option {other}; the options are URL, CONNECTION, FILE_FORMAT and COMMENT"
                        ),
                    });
                }
            }
        }
        let Some(url) = url else {
            return self.error(format!("stage {name} needs URL = 's3://bucket/prefix/'"));
        };
        let Some(connection) = connection else {
            return self.error(format!(
                "stage {name} needs CONNECTION = (CONNECTION_NAME = '...'): xstage reads stages through a role, never with keys"
            ));
        };
        Ok(Statement::CreateStage {
            name,
            mode,
            url,
            connection,
            file_format,
            comment,
        })
    }

    /// `(TYPE = CSV FIELD_DELIMITER = ',' ...)`: options with bare, quoted or numeric values,
    /// checked by the function's own rules ([`xstage_core::format::FileFormat::parse`]).
    fn file_format(&mut self) -> Result<BTreeMap<String, String>, ParseError> {
        let open = self.here();
        self.expect_symbol('(', "to open FILE_FORMAT = (TYPE = CSV ...)")?;
        let mut options: Vec<(String, String)> = Vec::new();
        while !self.symbol(')') {
            let key = match self.tokens.get(self.pos).map(|t| t.kind.clone()) {
                Some(Kind::Word {
                    text,
                    quoted: false,
                }) => text.to_ascii_uppercase(),
                _ => {
                    return self.error(format!(
                        "expected a file format option such as TYPE = CSV, or ')', found {}",
                        self.found()
                    ));
                }
            };
            self.pos += 1;
            self.expect_symbol('=', &format!("after {key}"))?;
            let value = match self.tokens.get(self.pos).map(|t| t.kind.clone()) {
                Some(Kind::Word { text, .. }) | Some(Kind::Str(text)) => text,
                _ => {
                    return self.error(format!(
                        "expected a value for {key}, found {}",
                        self.found()
                    ));
                }
            };
            self.pos += 1;
            self.symbol(',');
            options.push((key, value));
        }
        xstage_core::format::FileFormat::parse(options.iter().map(|(k, v)| (k, v))).map_err(
            |message| ParseError {
                offset: open,
                message,
            },
        )?;
        Ok(options.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_statements_parse() {
        let s = parse(
            "CREATE CONNECTION databend_test STORAGE_TYPE='s3' \
             ROLE_ARN='arn:aws:iam::987654321987:role/databend-test' EXTERNAL_ID='my-external-id-123'",
        )
        .unwrap();
        let Statement::CreateConnection {
            name,
            mode,
            options,
        } = s
        else {
            panic!("{s:?}")
        };
        assert_eq!((name.as_str(), mode), ("databend_test", CreateMode::Create));
        assert_eq!(
            options["ROLE_ARN"],
            "arn:aws:iam::987654321987:role/databend-test"
        );
        assert_eq!(options["EXTERNAL_ID"], "my-external-id-123");
        assert_eq!(
            parse("CREATE STAGE databend_test URL='s3://test-bucket-123/optional/prefix/' CONNECTION=(CONNECTION_NAME='databend_test')")
                .unwrap(),
            Statement::CreateStage {
                name: "databend_test".into(),
                mode: CreateMode::Create,
                url: "s3://test-bucket-123/optional/prefix/".into(),
                connection: StageConnection::Named("databend_test".into()),
                file_format: None,
                comment: None,
            }
        );
        assert_eq!(
            parse("SELECT * FROM @databend_test/test.parquet LIMIT 1").unwrap(),
            Statement::Query("SELECT * FROM @databend_test/test.parquet LIMIT 1".into())
        );
    }

    /// Databend's `FILE_FORMAT = (...)`: bare, quoted and numeric values, `\t` in a string,
    /// and the function's own checks at parse time.
    #[test]
    fn stage_file_formats() {
        let s = parse(
            "CREATE STAGE s URL='s3://b/p/' CONNECTION=(CONNECTION_NAME='c') \
             FILE_FORMAT = (TYPE = TSV, field_delimiter = '\\t' SKIP_HEADER = 1 NULL_DISPLAY = '\\\\N' COMPRESSION = 'gzip')",
        )
        .unwrap();
        let Statement::CreateStage {
            file_format: Some(f),
            ..
        } = s
        else {
            panic!("{s:?}")
        };
        assert_eq!(f["TYPE"], "TSV");
        assert_eq!(f["FIELD_DELIMITER"], "\t");
        assert_eq!(f["SKIP_HEADER"], "1");
        assert_eq!(f["NULL_DISPLAY"], "\\N");
        let (_, why) = error(
            "CREATE STAGE s URL='s3://b/' CONNECTION=(CONNECTION_NAME='c') FILE_FORMAT=(TYPE=ORC)",
        );
        assert!(
            why.contains("xstage reads CSV, TSV, NDJSON and PARQUET"),
            "{why}"
        );
        let (_, why) = error(
            "CREATE STAGE s URL='s3://b/' CONNECTION=(CONNECTION_NAME='c') FILE_FORMAT=(TYPE=CSV SKIP_HEADER=3)",
        );
        assert!(why.contains("SKIP_HEADER"), "{why}");
        let (_, why) = error(
            "CREATE STAGE s URL='s3://b/' CONNECTION=(CONNECTION_NAME='c') FILE_FORMAT=(TYPE=CSV",
        );
        assert!(why.contains("found the end"), "{why}");
    }

    #[test]
    fn modes_names_and_other_statements() {
        let s = parse("create or replace stage \"My\" url = 's3://b/p/' connection = (role_arn = 'x') file_format = (type = parquet)").unwrap();
        let Statement::CreateStage {
            name,
            mode,
            connection,
            ..
        } = s
        else {
            panic!()
        };
        assert_eq!((name.as_str(), mode), ("My", CreateMode::OrReplace));
        assert!(matches!(connection, StageConnection::Inline(o) if o["ROLE_ARN"] == "x"));
        let s =
            parse("CREATE CONNECTION IF NOT EXISTS C STORAGE_TYPE = 'S3', ROLE_ARN = 'r'").unwrap();
        assert!(
            matches!(s, Statement::CreateConnection { ref name, mode: CreateMode::IfNotExists, .. } if name == "c")
        );
        assert_eq!(parse("show stages").unwrap(), Statement::ShowStages);
        assert_eq!(
            parse("DESCRIBE STAGE s").unwrap(),
            Statement::DescStage("s".into())
        );
        assert_eq!(
            parse("DROP CONNECTION IF EXISTS c").unwrap(),
            Statement::DropConnection {
                name: "c".into(),
                if_exists: true
            }
        );
        assert!(matches!(parse("LIST @s").unwrap(), Statement::Query(_)));
        assert_eq!(
            parse("-- a comment\n/* another */ SHOW STAGES").unwrap(),
            Statement::ShowStages
        );
    }

    fn error(text: &str) -> (String, String) {
        let e = parse(text).unwrap_err();
        (text[e.offset.min(text.len())..].to_string(), e.message)
    }

    #[test]
    fn errors_say_where_and_why() {
        let (at, why) = error("CREATE CONNECTION c STORAGE_TYPE='s3' ROLE_ARN 'x'");
        assert_eq!(at, "'x'");
        assert!(why.contains("expected '=' after ROLE_ARN"), "{why}");
        let (at, why) =
            error("CREATE CONNECTION c STORAGE_TYPE='s3' ACCESS_KEY_ID='a' ROLE_ARN='r'");
        assert!(
            at.starts_with("ACCESS_KEY_ID") && why.contains("never keys"),
            "{why}"
        );
        let (_, why) = error("CREATE CONNECTION c STORAGE_TYPE='gcs' ROLE_ARN='r'");
        assert!(why.contains("'gcs' is not supported"), "{why}");
        let (_, why) = error("CREATE CONNECTION c ROLE_ARN='r'");
        assert!(why.contains("STORAGE_TYPE"), "{why}");
        let (at, why) =
            error("CREATE STAGE s URL='s3://b/' CONNECTION=(CONNECTION_NAME='c') COLOR='red'");
        assert!(
            at.starts_with("COLOR") && why.contains("unknown stage option"),
            "{why}"
        );
        let (_, why) = error("CREATE STAGE s URL='s3://b/'");
        assert!(why.contains("needs CONNECTION"), "{why}");
        let (_, why) = error("CREATE STAGE s URL='s3://b/");
        assert!(why.contains("no closing quote"), "{why}");
        let (_, why) = error("INSERT INTO t VALUES (1)");
        assert!(why.contains("INSERT is not supported"), "{why}");
        let (at, _) = error("SHOW STAGES extra");
        assert_eq!(at, "extra");
        let (_, why) =
            error("CREATE OR REPLACE CONNECTION IF NOT EXISTS c STORAGE_TYPE='s3' ROLE_ARN='r'");
        assert!(why.contains("cannot be used together"), "{why}");
    }
}
