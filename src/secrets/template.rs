//! `tb_secret('name')` and `tb_secret('name', 'default')` templating (Tinybird's syntax, `tb_var`
//! as an alias): replaces each `{{ tb_secret(...) }}` in a setting with the secret's value, or
//! the default when the secret does not exist. Settings are parsed when the repository loads
//! and rendered at start-up, once the vault has recovered. Values go in verbatim, as Tinybird
//! renders secrets in connection settings (it quotes them only inside SQL, and no Quiver
//! setting is SQL).

use super::crypto::Plaintext;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("Template Syntax Error: Cannot access secret '{0}'. Check the secret exists in the Workspace and the token has the required scope.")]
    Missing(String),
    #[error("Template Syntax Error: {0}")]
    Syntax(String),
}

/// One `tb_secret(...)` call: the name and the default.
fn parse_call(inner: &str) -> Result<(String, Option<String>), TemplateError> {
    let inner = inner.trim();
    let args = ["tb_secret", "tb_var"]
        .iter()
        .find_map(|f| inner.strip_prefix(f))
        .and_then(|rest| rest.trim().strip_prefix('('))
        .and_then(|rest| rest.trim_end().strip_suffix(')'))
        .ok_or_else(|| {
            TemplateError::Syntax(format!(
                "expected tb_secret('name') or tb_secret('name', 'default'), got `{inner}`"
            ))
        })?;
    let mut strings = Vec::new();
    let mut rest = args.trim();
    while !rest.is_empty() {
        let quote = rest
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')
            .ok_or_else(|| {
                TemplateError::Syntax(format!("arguments must be quoted strings in `{inner}`"))
            })?;
        let end = rest[1..]
            .find(quote)
            .ok_or_else(|| TemplateError::Syntax(format!("unclosed string in `{inner}`")))?
            + 1;
        strings.push(rest[1..end].to_string());
        rest = rest[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else if !rest.is_empty() {
            return Err(TemplateError::Syntax(format!(
                "expected `,` between arguments in `{inner}`"
            )));
        }
    }
    match strings.len() {
        1 => Ok((strings.remove(0), None)),
        2 => {
            let default = strings.pop();
            Ok((strings.remove(0), default))
        }
        _ => Err(TemplateError::Syntax(format!(
            "tb_secret takes a name and an optional default, in `{inner}`"
        ))),
    }
}

/// A parsed setting: literal text and `tb_secret` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Secret {
        name: String,
        default: Option<String>,
    },
}

impl Template {
    /// Parses every `{{ tb_secret(...) }}` of `text`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            pieces.push(Piece::Text(rest[..start].to_string()));
            let end = rest[start..]
                .find("}}")
                .ok_or_else(|| TemplateError::Syntax("`{{` without `}}`".to_string()))?
                + start;
            let (name, default) = parse_call(&rest[start + 2..end])?;
            pieces.push(Piece::Secret { name, default });
            rest = &rest[end + 2..];
        }
        pieces.push(Piece::Text(rest.to_string()));
        Ok(Template { pieces })
    }

    /// The secrets it reads, in order (a name may repeat).
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Secret { name, .. } => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The setting with each call replaced; `lookup(name)` gives a secret's value.
    pub fn render(
        &self,
        mut lookup: impl FnMut(&str) -> Option<Plaintext>,
    ) -> Result<Plaintext, TemplateError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Secret { name, default } => match (lookup(name), default) {
                    (Some(value), _) => out.push_str(&value.0),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => return Err(TemplateError::Missing(name.clone())),
                },
            }
        }
        Ok(Plaintext(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<Plaintext> {
        (name == "pg_password").then(|| Plaintext("s3cret".into()))
    }

    fn render(
        text: &str,
        lookup: impl FnMut(&str) -> Option<Plaintext>,
    ) -> Result<String, TemplateError> {
        Template::parse(text)?.render(lookup).map(|value| value.0)
    }

    #[test]
    fn values_defaults_and_the_seed_error() {
        assert_eq!(
            render("postgres://u:{{ tb_secret('pg_password') }}@h", lookup).unwrap(),
            "postgres://u:s3cret@h"
        );
        assert_eq!(
            render("{{tb_secret(\"kafka\", \"localhost:9092\")}}", lookup).unwrap(),
            "localhost:9092"
        );
        assert_eq!(
            render("{{ tb_var('pg_password', 'x') }}", lookup).unwrap(),
            "s3cret",
            "the workspace value wins"
        );
        assert_eq!(render("no templates", lookup).unwrap(), "no templates");
        let names: Vec<String> = Template::parse("{{tb_secret('a')}}-{{ tb_var('b', 'x') }}")
            .unwrap()
            .secret_names()
            .map(str::to_string)
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            render("{{ tb_secret('missing') }}", lookup).unwrap_err().to_string(),
            "Template Syntax Error: Cannot access secret 'missing'. Check the secret exists in the Workspace and the token has the required scope."
        );
        for bad in [
            "{{ tb_secret(missing) }}",
            "{{ tb_secret('a', 'b', 'c') }}",
            "{{ nope('a') }}",
            "{{ tb_secret('a')",
        ] {
            assert!(
                matches!(render(bad, lookup), Err(TemplateError::Syntax(_))),
                "{bad}"
            );
        }
    }
}
