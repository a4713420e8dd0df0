//! The `FunctionName` of an Invoke request, in each form Lambda accepts: a name
//! (`my-function`), a name with a qualifier (`my-function:$LATEST`), a partial ARN
//! (`123456789012:function:my-function`) or a full ARN
//! (`arn:aws:lambda:us-east-1:123456789012:function:my-function[:qualifier]`).

/// The function a request designates, and the qualifier it names, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub qualifier: Option<String>,
}

/// The only qualifier the emulator has: it deploys no versions or aliases.
pub const LATEST: &str = "$LATEST";

impl Target {
    pub fn parse(function_name: &str) -> Self {
        let parts: Vec<&str> = function_name.split(':').collect();
        let (name, qualifier) = match parts.as_slice() {
            [
                "arn",
                _partition,
                "lambda",
                _region,
                _account,
                "function",
                name,
                rest @ ..,
            ] => (*name, rest.first().copied()),
            [_account, "function", name, rest @ ..] => (*name, rest.first().copied()),
            [name, qualifier] => (*name, Some(*qualifier)),
            _ => (function_name, None),
        };
        Self {
            name: name.to_string(),
            qualifier: qualifier.map(str::to_string),
        }
    }

    /// Combines the name's qualifier with a `Qualifier` query parameter.
    pub fn with_qualifier(mut self, qualifier: Option<&str>) -> Result<Self, String> {
        match (&self.qualifier, qualifier) {
            (Some(a), Some(b)) if a != b => Err(format!(
                "the qualifier in the function name ({a}) does not match the Qualifier parameter ({b})"
            )),
            (None, Some(b)) => {
                self.qualifier = Some(b.to_string());
                Ok(self)
            }
            _ => Ok(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, qualifier: Option<&str>) -> Target {
        Target {
            name: name.into(),
            qualifier: qualifier.map(Into::into),
        }
    }

    #[test]
    fn every_form_lambda_accepts() {
        assert_eq!(Target::parse("q"), t("q", None));
        assert_eq!(Target::parse("q:$LATEST"), t("q", Some("$LATEST")));
        assert_eq!(Target::parse("123456789012:function:q"), t("q", None));
        assert_eq!(
            Target::parse("arn:aws:lambda:us-east-1:123456789012:function:q:prod"),
            t("q", Some("prod"))
        );
        assert_eq!(
            Target::parse("arn:aws-cn:lambda:cn-north-1:123456789012:function:q"),
            t("q", None)
        );
    }

    #[test]
    fn qualifiers_must_agree() {
        let q = Target::parse("q:$LATEST")
            .with_qualifier(Some("$LATEST"))
            .unwrap();
        assert_eq!(q.qualifier.as_deref(), Some(LATEST));
        assert!(Target::parse("q:1").with_qualifier(Some("2")).is_err());
        let q = Target::parse("q").with_qualifier(Some("v1")).unwrap();
        assert_eq!(q.qualifier.as_deref(), Some("v1"));
    }
}
