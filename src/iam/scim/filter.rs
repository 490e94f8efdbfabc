//! SCIM filters (RFC 7644 §3.4.2.2): parsing `userName eq "x" and not (emails[type eq "work"].value co "@y")`
//! into a tree, and evaluating it on a resource's JSON. Attribute names are case-insensitive;
//! string comparisons are too (every attribute Quiver filters on has `caseExact: false`), except
//! for `id`. Parsing is bounded for hostile input: a filter is at most [`MAX_FILTER_BYTES`] long
//! and nests at most [`MAX_DEPTH`] levels; `and`/`or` chains are flat lists, so neither parsing,
//! evaluating nor dropping a filter recurses deeper than its nesting.

use serde_json::Value as Json;

use crate::echo::echo;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `a and b and c`: at least two terms, kept flat (a long chain is a wide list, not a
    /// deep tree, so evaluating or dropping it cannot exhaust the stack).
    And(Vec<Filter>),
    /// `a or b or c`, flat like `And`.
    Or(Vec<Filter>),
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

/// The deepest nesting of parentheses (`not (...)` included) and `attr[...]` a filter may have;
/// the parser recurses once per level, so this bounds its stack.
pub const MAX_DEPTH: usize = 32;

/// The longest filter accepted, in bytes: identity providers send one or a few comparisons, so
/// this is generous, and it bounds the work one filter costs per resource it is evaluated on.
pub const MAX_FILTER_BYTES: usize = 8 * 1024;

pub fn parse_filter(text: &str) -> Result<Filter, String> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(format!(
            "the filter is {} bytes long; the limit is {MAX_FILTER_BYTES} bytes",
            text.len()
        ));
    }
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let filter = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(format!(
            "unexpected {} after a complete filter",
            found(parser.tokens.get(parser.pos))
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

    /// A filter inside `(...)` or `[...]`: one level deeper, refused past [`MAX_DEPTH`].
    fn nested(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "the filter nests more than {MAX_DEPTH} levels deep (parentheses, `not (...)` \
                 and `attr[...]` each add a level)"
            ));
        }
        let inner = self.or()?;
        self.depth -= 1;
        Ok(inner)
    }

    /// `a or b or ...`, read in a loop (a chain adds no recursion).
    fn or(&mut self) -> Result<Filter, String> {
        let mut terms = vec![self.and()?];
        while self.peek_word().as_deref() == Some("or") {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(chain(terms, Filter::Or))
    }

    /// `a and b and ...`; `and` binds tighter than `or`.
    fn and(&mut self) -> Result<Filter, String> {
        let mut terms = vec![self.not()?];
        while self.peek_word().as_deref() == Some("and") {
            self.pos += 1;
            terms.push(self.not()?);
        }
        Ok(chain(terms, Filter::And))
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
            Err(format!(
                "expected {}, got {}",
                found(Some(&token)),
                found(self.tokens.get(self.pos))
            ))
        }
    }

    fn atom(&mut self) -> Result<Filter, String> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.nested()?;
                self.expect(Token::Close)?;
                Ok(inner)
            }
            Some(Token::Word(word)) => {
                self.pos += 1;
                if self.tokens.get(self.pos) == Some(&Token::OpenBracket) {
                    self.pos += 1;
                    let filter = self.nested()?;
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
            other => Err(format!(
                "expected an attribute name, got {}",
                found(other.as_ref())
            )),
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
            other => return Err(format!("unknown operator `{}`", echo(other))),
        };
        let value = match self.tokens.get(self.pos).cloned() {
            Some(Token::Str(s)) => Json::String(s),
            Some(Token::Word(w)) => match w.as_str() {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                "null" => Json::Null,
                // Lenient: Tecton's own examples (`displayName eq engineering`) and Entra ID's
                // (`externalId eq jyoung`) leave simple values unquoted; such a word is a string.
                word => match serde_json::from_str::<serde_json::Number>(word) {
                    Ok(number) => Json::Number(number),
                    Err(_) if is_keyword(word) => {
                        return Err(format!(
                            "expected a value after the operator, got `{}`",
                            echo(word)
                        ))
                    }
                    Err(_) => Json::String(word.to_string()),
                },
            },
            other => {
                return Err(format!(
                    "expected a value after the operator, got {}",
                    found(other.as_ref())
                ))
            }
        };
        self.pos += 1;
        Ok(Filter::Compare(path, op, value))
    }
}

/// A token as a refusal names it, in the filter's own text (`None`: past its last token).
fn found(token: Option<&Token>) -> String {
    match token {
        None => "the end of the filter".to_string(),
        Some(Token::Word(word)) => format!("`{}`", echo(word)),
        Some(Token::Str(text)) => format!("the string {:?}", echo(text)),
        Some(Token::Open) => "`(`".to_string(),
        Some(Token::Close) => "`)`".to_string(),
        Some(Token::OpenBracket) => "`[`".to_string(),
        Some(Token::CloseBracket) => "`]`".to_string(),
    }
}

/// One term stays itself; several become one flat `And`/`Or`.
fn chain(mut terms: Vec<Filter>, join: fn(Vec<Filter>) -> Filter) -> Filter {
    if terms.len() == 1 {
        terms.pop().expect("one term")
    } else {
        join(terms)
    }
}

/// `and`, `or`, `not`: never an unquoted value.
fn is_keyword(word: &str) -> bool {
    ["and", "or", "not"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
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
    // An extension's attribute lives in the object under the extension's URN.
    if let Some((urn, Some(sub))) = super::resource::split_extension(word) {
        return Ok(AttrPath {
            attr: urn.to_string(),
            sub: Some(sub.to_string()),
        });
    }
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
        return Err(format!("`{}` is not an attribute path", echo(word)));
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
            super::names::fold(s)
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
        // An unquoted `12345` or `true` against a string attribute compares as its text.
        (Json::String(_), Json::Number(_) | Json::Bool(_)) => {
            return compare(value, op, &Json::String(wanted.to_string()), case_exact)
        }
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
            Filter::And(terms) => terms.iter().all(|term| term.matches(resource)),
            Filter::Or(terms) => terms.iter().any(|term| term.matches(resource)),
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
    fn unquoted_simple_values_extension_paths_and_normalised_names() {
        let user = json!({"userName": "email@example.com", "externalId": "jyoung", "displayName": "Caf\u{e9}",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "100009", "department": "Sales"}});
        for (text, expected) in [
            ("username eq email@example.com", true),
            ("externalId eq jyoung and userName pr", true),
            ("externalId eq JYOUNG", true),
            ("externalId eq other", false),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 100009", true),
            ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"sales\"", true),
            ("displayName eq \"CAFE\u{301}\"", true),
        ] {
            assert_eq!(parse_filter(text).unwrap().matches(&user), expected, "{text}");
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
            "userName eq and",
            "not userName eq \"a\"",
        ] {
            assert!(parse_filter(text).is_err(), "{text}");
        }
    }

    /// Nesting one level past the limit, by each construct that nests.
    #[test]
    fn nesting_past_the_limit_is_refused_naming_it() {
        let levels = MAX_DEPTH + 1;
        let deep = [
            format!("{}userName pr{}", "(".repeat(levels), ")".repeat(levels)),
            format!(
                "{}userName pr{}",
                "not (".repeat(levels),
                ")".repeat(levels)
            ),
            format!("{}value pr{}", "emails[".repeat(levels), "]".repeat(levels)),
        ];
        for text in deep {
            let error = parse_filter(&text).unwrap_err();
            assert!(
                error.contains(&format!("more than {MAX_DEPTH} levels")),
                "{error}"
            );
        }
        let at_limit = format!(
            "{}userName pr{}",
            "(".repeat(MAX_DEPTH),
            ")".repeat(MAX_DEPTH)
        );
        assert!(parse_filter(&at_limit).is_ok());
    }

    #[test]
    fn a_filter_over_the_length_limit_is_refused_naming_it() {
        let long = vec!["a pr"; 7000].join(" or ");
        let error = parse_filter(&long).unwrap_err();
        assert!(
            error.contains(&format!("the limit is {MAX_FILTER_BYTES} bytes")),
            "{error}"
        );
    }

    /// A long chain is one flat list: evaluating and dropping it recurse no deeper than one term.
    #[test]
    fn long_chains_are_flat() {
        // `x pr` joined by ` or ` is 8 bytes a term; leave room for the last term.
        let terms = MAX_FILTER_BYTES / 8 - 2;
        let text = vec!["x pr"; terms].join(" or ") + " or userName pr";
        let filter = parse_filter(&text).unwrap();
        let Filter::Or(parsed) = &filter else {
            panic!("expected one Or, got {filter:?}")
        };
        assert_eq!(parsed.len(), terms + 1);
        assert!(parsed.iter().all(|t| matches!(t, Filter::Present(_))));
        assert!(filter.matches(&user()));
        let mixed = parse_filter("a pr and b pr or c pr and d pr and e pr").unwrap();
        let Filter::Or(alternatives) = mixed else {
            panic!("`or` binds loosest")
        };
        assert!(
            matches!(&alternatives[..], [Filter::And(a), Filter::And(b)] if a.len() == 2 && b.len() == 3)
        );
    }
}
