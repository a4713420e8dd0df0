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

use lex::{Kind, Token, describe, leading_comments, lex};

mod lex;

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
    /// `EXPLAIN <query>`: what the query would read, from its footers (`options.dry_run`).
    Explain(String),
    /// `SET max_bytes_scanned = <bytes>` (`None`: `UNSET max_bytes_scanned`), given with
    /// every later query of the session (`options.max_bytes_scanned`).
    SetMaxBytesScanned(Option<u64>),
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

/// Parses one statement (without its `;`).
pub fn parse(text: &str) -> Result<Statement, ParseError> {
    let lead = leading_comments(text);
    let first = text[lead..]
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match first.as_str() {
        "SELECT" | "WITH" | "LIST" | "LS" | "VALUES" | "COPY" => {
            return Ok(Statement::Query(text.to_string()));
        }
        "EXPLAIN" => {
            let query = text[lead + first.len()..].trim();
            return match parse(query)? {
                Statement::Query(q) => Ok(Statement::Explain(q)),
                _ => Err(ParseError {
                    offset: lead,
                    message: "EXPLAIN takes a query: EXPLAIN SELECT ... FROM @stage/...".into(),
                }),
            };
        }
        "SET" | "UNSET" => return setting(text, lead, &first),
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
                     connections and stages, SELECT, LIST and COPY INTO on stages, EXPLAIN of a \
                     query, and SET max_bytes_scanned"
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

/// `SET max_bytes_scanned = <bytes>` or `UNSET max_bytes_scanned`: the one setting.
fn setting(text: &str, lead: usize, verb: &str) -> Result<Statement, ParseError> {
    let rest = text[lead + verb.len()..].trim();
    let (name, value) = match rest.split_once('=') {
        Some((name, value)) if verb == "SET" => (name.trim(), Some(value.trim())),
        None if verb == "UNSET" => (rest, None),
        _ => ("", None),
    };
    let fail = |message: String| ParseError {
        offset: lead,
        message,
    };
    if !name.eq_ignore_ascii_case("max_bytes_scanned") {
        return Err(fail(format!(
            "{verb} takes max_bytes_scanned (SET max_bytes_scanned = <bytes>, UNSET \
             max_bytes_scanned); got {:?}",
            rest
        )));
    }
    match value {
        None => Ok(Statement::SetMaxBytesScanned(None)),
        Some(v) => v
            .replace('_', "")
            .parse::<u64>()
            .map(|n| Statement::SetMaxBytesScanned(Some(n)))
            .map_err(|_| {
                fail(format!(
                    "max_bytes_scanned takes a number of bytes, got {v:?}"
                ))
            }),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
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
mod tests;
