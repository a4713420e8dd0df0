//! The SAM template: each `AWS::Serverless::Function` with the settings the emulator honours
//! (`FunctionName`, `MemorySize`, `Timeout`, `Environment.Variables`,
//! `ReservedConcurrentExecutions`), after `Globals.Function` and with `!Ref` / `!Sub` of
//! parameters and pseudo parameters resolved. Anything else a function sets is Lambda's
//! business and is ignored here, not rejected.
//!
//! Which WASI component runs a function is said by its `Metadata.XstageComponent`: a
//! `.wasm` path relative to the template's directory, or a bare file name looked up in the
//! components directory (see [`crate::functions`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

/// Lambda's defaults and ranges.
pub const DEFAULT_MEMORY_MB: u32 = 128;
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 3;
pub const MEMORY_RANGE_MB: (u32, u32) = (128, 10_240);
pub const TIMEOUT_RANGE_SECONDS: (u64, u64) = (1, 900);

/// The account id the emulator reports in ARNs and `AWS::AccountId`.
pub const ACCOUNT_ID: &str = "123456789012";

/// A template that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template {path}: {source}; pass --template PATH")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error(
        "{path} declares no AWS::Serverless::Function under Resources; add one (see the repository's template.yaml)"
    )]
    NoFunctions { path: PathBuf },
    #[error("{path}: function {function}: {field} {message}")]
    Field {
        path: PathBuf,
        function: String,
        field: String,
        message: String,
    },
    #[error("{path}: functions {first} and {second} both answer to the name {name}; rename one")]
    Duplicate {
        path: PathBuf,
        first: String,
        second: String,
        name: String,
    },
    #[error("--parameter-overrides: {0}")]
    Override(String),
}

/// One `AWS::Serverless::Function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The resource's logical id.
    pub logical_id: String,
    /// `FunctionName`, when set.
    pub function_name: Option<String>,
    pub memory_size_mb: u32,
    pub timeout: Duration,
    pub variables: BTreeMap<String, String>,
    pub reserved_concurrency: Option<u32>,
    /// `Metadata.XstageComponent`, as written.
    pub component: Option<String>,
}

impl FunctionSpec {
    /// The name Lambda gives the function: `FunctionName`, else the logical id.
    pub fn name(&self) -> &str {
        self.function_name.as_deref().unwrap_or(&self.logical_id)
    }

    /// Whether `name` designates this function (its logical id or its `FunctionName`).
    pub fn answers_to(&self, name: &str) -> bool {
        name == self.logical_id || self.function_name.as_deref() == Some(name)
    }
}

/// The functions of a template, and where it lives.
#[derive(Debug, Clone)]
pub struct Template {
    pub path: PathBuf,
    pub functions: Vec<FunctionSpec>,
}

impl Template {
    /// Reads and resolves a template. `overrides` are `Key=Value` pairs for its Parameters,
    /// as `sam deploy --parameter-overrides` takes them; `region` is `AWS::Region`.
    pub fn load(path: &Path, overrides: &[String], region: &str) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text, overrides, region)
    }

    pub fn parse(
        path: &Path,
        text: &str,
        overrides: &[String],
        region: &str,
    ) -> Result<Self, TemplateError> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| TemplateError::Yaml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let params = Parameters::new(&doc, overrides, region)?;
        let globals = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Value::Null);
        let mut functions = Vec::new();
        if let Some(Value::Mapping(resources)) = doc.get("Resources") {
            for (id, resource) in resources {
                let Some(id) = id.as_str() else { continue };
                if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function")
                {
                    continue;
                }
                let reader = Reader {
                    path,
                    function: id,
                    params: &params,
                };
                functions.push(reader.function(resource, &globals)?);
            }
        }
        if functions.is_empty() {
            return Err(TemplateError::NoFunctions {
                path: path.to_path_buf(),
            });
        }
        for (i, a) in functions.iter().enumerate() {
            for b in &functions[i + 1..] {
                for name in [Some(a.logical_id.as_str()), a.function_name.as_deref()]
                    .into_iter()
                    .flatten()
                {
                    if b.answers_to(name) {
                        return Err(TemplateError::Duplicate {
                            path: path.to_path_buf(),
                            first: a.logical_id.clone(),
                            second: b.logical_id.clone(),
                            name: name.to_string(),
                        });
                    }
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            functions,
        })
    }

    /// The function a name designates.
    pub fn function(&self, name: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.answers_to(name))
    }

    /// The template's directory (relative component paths start here).
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Parameter values: overrides, else `Default`; and the pseudo parameters.
struct Parameters(BTreeMap<String, String>);

impl Parameters {
    fn new(doc: &Value, overrides: &[String], region: &str) -> Result<Self, TemplateError> {
        let mut values = BTreeMap::new();
        values.insert("AWS::Region".to_string(), region.to_string());
        values.insert("AWS::AccountId".to_string(), ACCOUNT_ID.to_string());
        values.insert("AWS::Partition".to_string(), "aws".to_string());
        values.insert("AWS::URLSuffix".to_string(), "amazonaws.com".to_string());
        values.insert("AWS::StackName".to_string(), "xstage-local".to_string());
        let declared: Vec<String> = match doc.get("Parameters") {
            Some(Value::Mapping(params)) => {
                for (name, spec) in params {
                    let (Some(name), Some(default)) = (name.as_str(), spec.get("Default")) else {
                        continue;
                    };
                    if let Some(v) = scalar(default) {
                        values.insert(name.to_string(), v);
                    }
                }
                params
                    .keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            }
            _ => Vec::new(),
        };
        for pair in overrides.iter().flat_map(|o| o.split_whitespace()) {
            let pair = pair.strip_prefix("ParameterKey=").unwrap_or(pair);
            let (key, value) = pair
                .split_once(",ParameterValue=")
                .or_else(|| pair.split_once('='))
                .ok_or_else(|| TemplateError::Override(format!("{pair:?} is not Key=Value")))?;
            if !declared.iter().any(|d| d == key) {
                return Err(TemplateError::Override(format!(
                    "the template has no parameter {key:?}; it declares {}",
                    if declared.is_empty() {
                        "none".to_string()
                    } else {
                        declared.join(", ")
                    }
                )));
            }
            values.insert(key.to_string(), value.to_string());
        }
        Ok(Self(values))
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads one function's fields, resolving intrinsics.
struct Reader<'a> {
    path: &'a Path,
    function: &'a str,
    params: &'a Parameters,
}

impl Reader<'_> {
    fn error(&self, field: &str, message: impl Into<String>) -> TemplateError {
        TemplateError::Field {
            path: self.path.to_path_buf(),
            function: self.function.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn function(&self, resource: &Value, globals: &Value) -> Result<FunctionSpec, TemplateError> {
        let props = resource.get("Properties").unwrap_or(&Value::Null);
        let get = |key: &str| props.get(key).or_else(|| globals.get(key));
        let function_name = props
            .get("FunctionName")
            .map(|v| self.string("FunctionName", v))
            .transpose()?;
        if let Some(name) = &function_name {
            validate_name(name).map_err(|m| self.error("FunctionName", m))?;
        }
        let memory_size_mb = match get("MemorySize") {
            None => DEFAULT_MEMORY_MB,
            Some(v) => {
                let mb = self.integer("MemorySize", v)?;
                let (lo, hi) = MEMORY_RANGE_MB;
                if !(u64::from(lo)..=u64::from(hi)).contains(&mb) {
                    return Err(self.error(
                        "MemorySize",
                        format!("{mb} is outside Lambda's range of {lo} to {hi} MB"),
                    ));
                }
                mb as u32
            }
        };
        let timeout = match get("Timeout") {
            None => DEFAULT_TIMEOUT_SECONDS,
            Some(v) => {
                let s = self.integer("Timeout", v)?;
                let (lo, hi) = TIMEOUT_RANGE_SECONDS;
                if !(lo..=hi).contains(&s) {
                    return Err(self.error(
                        "Timeout",
                        format!("{s} is outside Lambda's range of {lo} to {hi} seconds"),
                    ));
                }
                s
            }
        };
        let mut variables = BTreeMap::new();
        for source in [globals, props] {
            if let Some(Value::Mapping(vars)) =
                source.get("Environment").and_then(|e| e.get("Variables"))
            {
                for (k, v) in vars {
                    let k = k.as_str().ok_or_else(|| {
                        self.error("Environment.Variables", "has a non-string key")
                    })?;
                    let field = format!("Environment.Variables.{k}");
                    variables.insert(k.to_string(), self.string(&field, v)?);
                }
            }
        }
        let reserved_concurrency = props
            .get("ReservedConcurrentExecutions")
            .map(|v| {
                let n = self.integer("ReservedConcurrentExecutions", v)?;
                u32::try_from(n)
                    .map_err(|_| self.error("ReservedConcurrentExecutions", "is too large"))
            })
            .transpose()?;
        let component = resource
            .get("Metadata")
            .and_then(|m| m.get("XstageComponent"))
            .map(|v| self.string("Metadata.XstageComponent", v))
            .transpose()?;
        Ok(FunctionSpec {
            logical_id: self.function.to_string(),
            function_name,
            memory_size_mb,
            timeout: Duration::from_secs(timeout),
            variables,
            reserved_concurrency,
            component,
        })
    }

    fn integer(&self, field: &str, v: &Value) -> Result<u64, TemplateError> {
        let s = self.string(field, v)?;
        s.trim()
            .parse()
            .map_err(|_| self.error(field, format!("is {s:?}, not a whole number")))
    }

    /// A scalar, a `!Ref`/`Ref` of a parameter, or a `!Sub`/`Fn::Sub` of parameters.
    fn string(&self, field: &str, v: &Value) -> Result<String, TemplateError> {
        if let Some(s) = scalar(v) {
            return Ok(s);
        }
        let (function, arg) = match v {
            Value::Tagged(t) => (
                format!("!{}", t.tag.to_string().trim_start_matches('!')),
                &t.value,
            ),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().expect("one entry");
                (k.as_str().unwrap_or_default().to_string(), v)
            }
            _ => return Err(self.error(field, "must be a string or a number")),
        };
        match function.as_str() {
            "!Ref" | "Ref" => {
                let name = arg
                    .as_str()
                    .ok_or_else(|| self.error(field, "has a !Ref that is not a name"))?;
                self.params.0.get(name).cloned().ok_or_else(|| {
                    self.error(
                        field,
                        format!(
                            "refers to {name}, which is neither a parameter with a Default nor a pseudo parameter; \
                             give it with --parameter-overrides {name}=VALUE"
                        ),
                    )
                })
            }
            "!Join" | "Fn::Join" => self.join(field, arg),
            "!Sub" | "Fn::Sub" => {
                let text = arg
                    .as_str()
                    .ok_or_else(|| self.error(field, "uses the list form of !Sub, which the emulator does not resolve; use a string"))?;
                self.substitute(field, text)
            }
            other => Err(self.error(
                field,
                format!(
                    "uses {other}, which the emulator cannot resolve locally; give a literal value or a !Ref of a parameter"
                ),
            )),
        }
    }

    /// `!Join [delimiter, [values...]]`, or `!Join [delimiter, !Ref ListParameter]` where the
    /// parameter (a CommaDelimitedList) holds comma-separated values.
    fn join(&self, field: &str, arg: &Value) -> Result<String, TemplateError> {
        let form = || self.error(field, "has a !Join that is not [delimiter, list]");
        let Some([delimiter, list]) = arg.as_sequence().map(Vec::as_slice) else {
            return Err(form());
        };
        let delimiter = scalar(delimiter).ok_or_else(form)?;
        let values: Vec<String> = match list {
            Value::Sequence(items) => items
                .iter()
                .map(|item| self.string(field, item))
                .collect::<Result<_, _>>()?,
            reference => self
                .string(field, reference)?
                .split(',')
                .map(|v| v.trim().to_string())
                .collect(),
        };
        Ok(values.join(&delimiter))
    }

    fn substitute(&self, field: &str, text: &str) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| self.error(field, "has an unclosed ${ in !Sub"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                let value = self.params.0.get(name).ok_or_else(|| {
                    self.error(
                        field,
                        format!("substitutes ${{{name}}}, which is not a parameter with a value"),
                    )
                })?;
                out.push_str(value);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Lambda's function name rule: 1 to 64 letters, digits, hyphens and underscores.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{name:?} must be 1 to 64 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{name:?} contains {c:?}; Lambda allows letters, digits, - and _"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse(Path::new("template.yaml"), text, &[], "us-east-2")
    }

    const TEMPLATE: &str = r#"
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  Size:
    Type: Number
    Default: 1024
  Stage:
    Type: String
    Default: dev
  Roles:
    Type: CommaDelimitedList
    Default: arn:aws:iam::1:role/a, arn:aws:iam::2:role/b
Globals:
  Function:
    Timeout: 30
    Environment:
      Variables:
        SHARED: from-globals
        OVERRIDDEN: globals
Resources:
  StageQuery:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      XstageComponent: xstage_component.wasm
    Properties:
      FunctionName: !Sub "xstage-${Stage}-query"
      MemorySize: !Ref Size
      ReservedConcurrentExecutions: 4
      Environment:
        Variables:
          OVERRIDDEN: function
          REGION_SEEN: !Ref AWS::Region
          JOINED: !Join [",", !Ref Roles]
          LISTED: !Join ["|", [x, !Ref Stage]]
  Role:
    Type: AWS::IAM::Role
  Plain:
    Type: AWS::Serverless::Function
    Properties:
      Handler: bootstrap
"#;

    #[test]
    fn functions_are_read_with_globals_and_intrinsics() {
        let t = parse(TEMPLATE).unwrap();
        assert_eq!(t.functions.len(), 2);
        let q = t.function("StageQuery").unwrap();
        assert_eq!(q.name(), "xstage-dev-query");
        assert_eq!(t.function("xstage-dev-query"), Some(q));
        assert_eq!(q.memory_size_mb, 1024);
        assert_eq!(q.timeout, Duration::from_secs(30));
        assert_eq!(q.reserved_concurrency, Some(4));
        assert_eq!(q.component.as_deref(), Some("xstage_component.wasm"));
        assert_eq!(q.variables["SHARED"], "from-globals");
        assert_eq!(q.variables["OVERRIDDEN"], "function");
        assert_eq!(q.variables["REGION_SEEN"], "us-east-2");
        assert_eq!(
            q.variables["JOINED"],
            "arn:aws:iam::1:role/a,arn:aws:iam::2:role/b"
        );
        assert_eq!(q.variables["LISTED"], "x|dev");
        let p = t.function("Plain").unwrap();
        assert_eq!(p.memory_size_mb, DEFAULT_MEMORY_MB);
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!(p.reserved_concurrency, None);
        assert!(t.function("Role").is_none());
    }

    #[test]
    fn overrides_replace_defaults_and_unknown_ones_are_refused() {
        let path = Path::new("template.yaml");
        let t = Template::parse(
            path,
            TEMPLATE,
            &["Size=2048 ParameterKey=Stage,ParameterValue=prod".into()],
            "us-east-1",
        )
        .unwrap();
        let q = t.function("StageQuery").unwrap();
        assert_eq!((q.memory_size_mb, q.name()), (2048, "xstage-prod-query"));
        let err = Template::parse(path, TEMPLATE, &["Nope=1".into()], "us-east-1").unwrap_err();
        assert!(err.to_string().contains("no parameter \"Nope\""), "{err}");
    }

    #[test]
    fn bad_values_name_the_function_and_field() {
        let bad = TEMPLATE.replace("Default: 1024", "Default: 20000");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains("StageQuery") && err.contains("MemorySize"),
            "{err}"
        );
        assert!(err.contains("128 to 10240"), "{err}");
        let bad = TEMPLATE.replace("Timeout: 30", "Timeout: thirty");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains("Timeout") && err.contains("whole number"),
            "{err}"
        );
        let bad = TEMPLATE.replace("!Ref Size", "!GetAtt Role.Arn");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("!GetAtt") && err.contains("literal"), "{err}");
        let bad = TEMPLATE.replace("!Ref Size", "!Ref Missing");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("--parameter-overrides Missing=VALUE"), "{err}");
    }

    #[test]
    fn templates_without_functions_or_with_clashing_names_are_refused() {
        assert!(matches!(
            parse("Resources: {}"),
            Err(TemplateError::NoFunctions { .. })
        ));
        let clash = TEMPLATE.replace("Handler: bootstrap", "FunctionName: StageQuery");
        assert!(matches!(
            parse(&clash),
            Err(TemplateError::Duplicate { .. })
        ));
        assert!(matches!(parse("a: [b"), Err(TemplateError::Yaml { .. })));
    }

    #[test]
    fn function_names_follow_lambda_rules() {
        assert!(validate_name("xstage-query_1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a:b").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
    }
}
