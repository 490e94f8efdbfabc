//! SCIM filters (RFC 7644 §3.4.2.2): parsing `userName eq "x" and not (emails[type eq "work"].value co "@y")`
//! into a tree, and evaluating it on a resource's JSON. Attribute names are case-insensitive;
//! string comparisons are too (every attribute Quiver filters on has `caseExact: false`), except
//! for `id`.

use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, Op, Json),
    /// `attr[filter]`, optionally followed by `.sub op value` or `.sub pr`.
    Value {
        attr: String,
        filter: Box<Filter>,
        then: Option<Box<Filter>>,
    },
}

/// `attr` or `attr.sub`, without any schema URN prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub attr: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

/// Deeper nesting is refused, so a hostile filter cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

pub fn parse_filter(text: &str) -> Result<Filter, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let filter = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(format!(
            "unexpected {:?} after a complete filter",
            parser.tokens[parser.pos]
        ));
    }
    Ok(filter)
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("a string is not closed with `\"`".to_string()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some(other) => value.push(other),
                            None => return Err("a string ends in `\\`".to_string()),
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Str(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "()[]\"".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    if tokens.is_empty() {
        return Err("the filter is empty".to_string());
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.pos) {
            Some(Token::Word(w)) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("the filter nests too deeply".to_string());
        }
        let mut left = self.and()?;
        while self.peek_word().as_deref() == Some("or") {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.not()?;
        while self.peek_word().as_deref() == Some("and") {
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Filter, String> {
        if self.peek_word().as_deref() == Some("not") {
            self.pos += 1;
            if self.tokens.get(self.pos) != Some(&Token::Open) {
                return Err("`not` must be followed by `(`".to_string());
            }
            return Ok(Filter::Not(Box::new(self.atom()?)));
        }
        self.atom()
    }

    fn expect(&mut self, token: Token) -> Result<(), String> {
        if self.tokens.get(self.pos) == Some(&token) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {token:?}"))
        }
    }

    fn atom(&mut self) -> Result<Filter, String> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.or()?;
                self.expect(Token::Close)?;
                Ok(inner)
            }
            Some(Token::Word(word)) => {
                self.pos += 1;
                if self.tokens.get(self.pos) == Some(&Token::OpenBracket) {
                    self.pos += 1;
                    let filter = self.or()?;
                    self.expect(Token::CloseBracket)?;
                    let attr = strip_urn(&word).to_string();
                    let then = match self.tokens.get(self.pos) {
                        Some(Token::Word(next)) if next.starts_with('.') => {
                            self.pos += 1;
                            let sub = AttrPath {
                                attr: next[1..].to_string(),
                                sub: None,
                            };
                            Some(Box::new(self.comparison(sub)?))
                        }
                        _ => None,
                    };
                    return Ok(Filter::Value {
                        attr,
                        filter: Box::new(filter),
                        then,
                    });
                }
                let path = attr_path(&word)?;
                self.comparison(path)
            }
            other => Err(format!("expected an attribute name, got {other:?}")),
        }
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Filter, String> {
        let op = self
            .peek_word()
            .ok_or("expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)")?;
        self.pos += 1;
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(format!("unknown operator `{other}`")),
        };
        let value = match self.tokens.get(self.pos).cloned() {
            Some(Token::Str(s)) => Json::String(s),
            Some(Token::Word(w)) => match w.as_str() {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                "null" => Json::Null,
                number => serde_json::from_str::<serde_json::Number>(number)
                    .map(Json::Number)
                    .map_err(|_| format!("`{number}` is not a value (quote strings)"))?,
            },
            other => return Err(format!("expected a value, got {other:?}")),
        };
        self.pos += 1;
        Ok(Filter::Compare(path, op, value))
    }
}

/// Drops a schema URN prefix: `urn:...:User:userName` -> `userName`.
pub fn strip_urn(name: &str) -> &str {
    if name.to_ascii_lowercase().starts_with("urn:") {
        name.rsplit(':').next().unwrap_or(name)
    } else {
        name
    }
}

fn attr_path(word: &str) -> Result<AttrPath, String> {
    let name = strip_urn(word);
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    let (attr, sub) = match name.split_once('.') {
        Some((attr, sub)) => (attr, Some(sub)),
        None => (name, None),
    };
    if !valid(attr) || sub.is_some_and(|s| !valid(s)) {
        return Err(format!("`{word}` is not an attribute path"));
    }
    Ok(AttrPath {
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

/// A field of a JSON object by case-insensitive name.
pub fn get_ci<'a>(object: &'a Json, name: &str) -> Option<&'a Json> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Every value at `path` (flattening multi-valued attributes).
fn values_at<'a>(resource: &'a Json, path: &AttrPath) -> Vec<&'a Json> {
    let Some(top) = get_ci(resource, &path.attr) else {
        return Vec::new();
    };
    let items: Vec<&Json> = match top {
        Json::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        None => items,
        Some(sub) => items
            .into_iter()
            .filter_map(|item| get_ci(item, sub))
            .collect(),
    }
}

fn compare(value: &Json, op: Op, wanted: &Json, case_exact: bool) -> bool {
    use std::cmp::Ordering;
    let fold = |s: &str| {
        if case_exact {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let ordering = match (value, wanted) {
        (Json::String(a), Json::String(b)) => {
            let (a, b) = (fold(a), fold(b));
            match op {
                Op::Co => return a.contains(&b),
                Op::Sw => return a.starts_with(&b),
                Op::Ew => return a.ends_with(&b),
                _ => a.cmp(&b),
            }
        }
        (Json::Bool(a), Json::Bool(b)) => match op {
            Op::Eq => return a == b,
            Op::Ne => return a != b,
            _ => return false,
        },
        (Json::Number(a), Json::Number(b)) => match a.as_f64().zip(b.as_f64()) {
            Some((a, b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            None => return false,
        },
        _ => return op == Op::Ne,
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Ne => ordering != Ordering::Equal,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

impl Filter {
    /// Whether `resource` (or, inside `attr[...]`, one value of a multi-valued attribute)
    /// matches.
    pub fn matches(&self, resource: &Json) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(inner) => !inner.matches(resource),
            Filter::Present(path) => values_at(resource, path).iter().any(|v| match v {
                Json::Null => false,
                Json::String(s) => !s.is_empty(),
                Json::Array(items) => !items.is_empty(),
                _ => true,
            }),
            Filter::Compare(path, op, wanted) => {
                let case_exact = path.attr.eq_ignore_ascii_case("id") && path.sub.is_none();
                let values = values_at(resource, path);
                if values.is_empty() {
                    return *op == Op::Ne && !wanted.is_null();
                }
                match op {
                    Op::Ne => values
                        .iter()
                        .all(|v| compare(v, Op::Ne, wanted, case_exact)),
                    _ => values.iter().any(|v| compare(v, *op, wanted, case_exact)),
                }
            }
            Filter::Value { attr, filter, then } => {
                let items: Vec<&Json> = match get_ci(resource, attr) {
                    Some(Json::Array(items)) => items.iter().collect(),
                    Some(single) => vec![single],
                    None => Vec::new(),
                };
                items
                    .into_iter()
                    .filter(|item| filter.matches(item))
                    .any(|item| then.as_ref().is_none_or(|t| t.matches(item)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Json {
        json!({"id": "AbC", "userName": "Alice@Example.com", "active": true, "name": {"givenName": "Alice"},
               "emails": [{"value": "a@home.org", "type": "home"}, {"value": "alice@work.com", "type": "work"}],
               "meta": {"lastModified": "2026-01-02T00:00:00Z"}})
    }

    #[test]
    fn operators_and_grouping() {
        let cases = [
            ("userName eq \"alice@example.com\"", true),
            ("USERNAME Eq \"ALICE@EXAMPLE.COM\"", true),
            ("id eq \"abc\"", false),
            ("userName ne \"bob@example.com\"", true),
            ("userName co \"example\" and active eq true", true),
            ("userName sw \"bob\" or name.givenName ew \"ice\"", true),
            ("not (active eq true)", false),
            ("title pr", false),
            ("emails pr and (emails.type eq \"home\")", true),
            ("emails[type eq \"work\"].value eq \"alice@work.com\"", true),
            ("emails[type eq \"work\" and value co \"home\"]", false),
            ("meta.lastModified gt \"2026-01-01T00:00:00Z\"", true),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:userName sw \"ALICE\"",
                true,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_filter(text).unwrap().matches(&user()),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_filters_are_refused() {
        for text in [
            "",
            "userName",
            "userName xx \"a\"",
            "userName eq",
            "(userName eq \"a\"",
            "userName eq \"a",
            "emails[type eq \"w\"",
            "userName eq alice",
            "not userName eq \"a\"",
        ] {
            assert!(parse_filter(text).is_err(), "{text}");
        }
        let deep = format!("{}userName eq \"a\"{}", "(".repeat(100), ")".repeat(100));
        assert!(parse_filter(&deep).unwrap_err().contains("deeply"));
    }
}
