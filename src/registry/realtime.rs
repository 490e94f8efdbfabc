//! Realtime feature views (Tecton's `Calculation` features, without Python): typed outputs
//! computed at request time by Common Expression Language programs over the request context
//! (`request.<field>`) and the features of upstream views (`<view>.<feature>`). Programs are
//! compiled once, when the repository is loaded, and so is the list of upstream features they
//! read: a request row's CEL maps hold only those.

use std::sync::LazyLock;

use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context, Program, Value as Cel};
use cel_parser::ast::{EntryExpr, Expr, MapExpr, StructExpr};
use cel_parser::Expression;

use super::types::DataType;
use super::value::Value;
use super::{Feature, Field, ViewId};

/// How a realtime view computes its features.
#[derive(Debug)]
pub struct RealtimeSpec {
    /// The request-context fields it reads (`inputRequestContextKeys`).
    pub request_schema: Vec<Field>,
    /// Upstream views whose features the expressions read, by id and name.
    pub sources: Vec<(ViewId, String)>,
    /// One compiled program per feature, parallel to the view's features.
    pub programs: Vec<Program>,
    /// The programs' source text, parallel to `programs` (what a plan compares).
    pub expressions: Vec<String>,
    /// Parallel to `sources`: the features (index in the upstream view, CEL map key) some
    /// expression reads. Keys are made once; a row's map clones them (an `Arc` each).
    pub reads: Vec<Vec<(usize, Key)>>,
}

/// Compiles an expression, checking that it only reads `request` and the upstream views.
pub fn compile(expression: &str, sources: &[String]) -> Result<Program, String> {
    // The parser panics on some malformed input instead of answering an error; a bad
    // repository must be reported, not crash the server.
    let parsed = std::panic::catch_unwind(|| Program::compile(expression))
        .map_err(|_| format!("expression `{expression}` does not parse"))?;
    let program = parsed.map_err(|e| format!("expression `{expression}` does not parse: {e}"))?;

    let references = program.references();
    for variable in references.variables() {
        if variable != "request" && !sources.iter().any(|s| s == variable) {
            return Err(format!("expression `{expression}` reads `{variable}`, which is neither `request` nor an upstream view ({})", sources.join(", ")));
        }
    }
    Ok(program)
}

/// The features of upstream view `source` that `expressions` read: those they select by name
/// (`source.feature`, `has(source.feature)`), or all of them when one reads `source` any other
/// way (whole, indexed, iterated).
pub fn features_read(
    expressions: &[String],
    source: &str,
    features: &[Feature],
) -> Vec<(usize, Key)> {
    let mut read = vec![false; features.len()];
    for expression in expressions {
        match fields_read(expression, source) {
            Some(fields) => {
                for field in fields {
                    if let Some(i) = features.iter().position(|f| f.name == field) {
                        read[i] = true;
                    }
                }
            }
            None => read.fill(true),
        }
    }
    features
        .iter()
        .zip(read)
        .enumerate()
        .filter(|(_, (_, read))| *read)
        .map(|(i, (feature, _))| (i, Key::from(feature.name.clone())))
        .collect()
}

/// The fields of `variable` an expression selects; `None` when it reads `variable` otherwise
/// (or does not parse).
fn fields_read(expression: &str, variable: &str) -> Option<Vec<String>> {
    let parsed = cel_parser::Parser::default().parse(expression).ok()?;
    let mut fields = Vec::new();
    selects_only(&parsed, variable, &mut fields).then_some(fields)
}

/// Adds to `fields` the fields of `variable` that `expression` selects; false when `variable`
/// appears other than as the operand of a selection.
fn selects_only(expression: &Expression, variable: &str, fields: &mut Vec<String>) -> bool {
    let children: Vec<&Expression> = match &expression.expr {
        Expr::Select(select) => match &select.operand.expr {
            Expr::Ident(name) if name == variable => {
                fields.push(select.field.clone());
                return true;
            }
            _ => vec![&select.operand],
        },
        Expr::Ident(name) => return name != variable,
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Expr::Comprehension(loop_) => vec![
            &loop_.iter_range,
            &loop_.accu_init,
            &loop_.loop_cond,
            &loop_.loop_step,
            &loop_.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(MapExpr { entries }) | Expr::Struct(StructExpr { entries, .. }) => entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::StructField(field) => vec![&field.value],
                EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
            })
            .collect(),
        Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    };
    children
        .into_iter()
        .all(|child| selects_only(child, variable, fields))
}

/// Our value as a CEL value (timestamps as RFC 3339 strings, structs as lists).
pub fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Int64(i) => Cel::Int(*i),
        Value::Float32(f) => Cel::Float(f64::from(*f)),
        Value::Float64(f) => Cel::Float(*f),
        Value::String(s) => Cel::String(s.clone().into()),
        Value::Timestamp(t) => Cel::String(crate::time::format_timestamp(*t).into()),
        Value::Array(items) | Value::Struct(items) => {
            Cel::List(items.iter().map(to_cel).collect::<Vec<_>>().into())
        }
        Value::Map(entries) => map(entries.iter().map(|(k, v)| (k.clone(), to_cel(v)))),
    }
}

/// A CEL map with string keys.
pub fn map<K: Into<Key>>(entries: impl Iterator<Item = (K, Cel)>) -> Cel {
    Cel::Map(Map {
        map: std::sync::Arc::new(entries.map(|(k, v)| (k.into(), v)).collect()),
    })
}

/// A CEL result as the declared type; `None` when it is not of that type.
pub fn from_cel(result: &Cel, data_type: &DataType) -> Option<Value> {
    Some(match (result, data_type) {
        (Cel::Null, _) => Value::Null,
        (Cel::Bool(b), DataType::Bool) => Value::Bool(*b),
        (Cel::Int(i), DataType::Int64) => Value::Int64(*i),
        (Cel::UInt(u), DataType::Int64) => Value::Int64(i64::try_from(*u).ok()?),
        (Cel::Float(f), DataType::Float64) => Value::Float64(*f),
        (Cel::Int(i), DataType::Float64) => Value::Float64(*i as f64),
        (Cel::Float(f), DataType::Float32) => Value::Float32(*f as f32),
        (Cel::String(s), DataType::String) => Value::String(s.to_string()),
        (Cel::List(items), DataType::Array(element)) => Value::Array(
            items
                .iter()
                .map(|i| from_cel(i, element))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// CEL's built-in functions, registered once for the process: `Context::default` boxes and
/// hashes (SipHash) a dozen of them, which cost more than the evaluation itself when done on
/// every call. Each evaluation's variables go in a child scope of it.
static BUILTINS: LazyLock<Context<'static>> = LazyLock::new(Context::default);

/// Runs a program with the given variables; an evaluation error (e.g. comparing with a missing
/// upstream value) yields null.
pub fn evaluate(program: &Program, variables: &[(&str, Cel)], data_type: &DataType) -> Value {
    let mut context = BUILTINS.new_inner_scope();
    for (name, value) in variables {
        context.add_variable_from_value(*name, value.clone());
    }
    // As at compile time, a panic inside the interpreter must not take the request down.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&context)))
        .ok()
        .and_then(Result::ok)
        .and_then(|result| from_cel(&result, data_type))
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_over_request_and_upstream_features() {
        let sources = vec!["metrics".to_string()];
        let program = compile("request.amount > metrics.amt_mean", &sources).unwrap();
        let request = map([("amount".to_string(), Cel::Float(500.0))].into_iter());
        let metrics = |mean: Value| map([("amt_mean".to_string(), to_cel(&mean))].into_iter());
        let run = |mean| {
            evaluate(
                &program,
                &[("request", request.clone()), ("metrics", metrics(mean))],
                &DataType::Bool,
            )
        };
        assert_eq!(run(Value::Float64(120.0)), Value::Bool(true));
        assert_eq!(run(Value::Float64(900.0)), Value::Bool(false));
        assert_eq!(
            run(Value::Null),
            Value::Null,
            "a missing upstream value gives null"
        );
        assert!(compile("other.x > 1", &sources)
            .unwrap_err()
            .contains("reads `other`"));
        assert!(compile("request.amount >", &sources)
            .unwrap_err()
            .contains("does not parse"));
        let ternary = compile("request.amount > 100.0 ? 'high' : 'low'", &sources).unwrap();
        assert_eq!(
            evaluate(&ternary, &[("request", request)], &DataType::String),
            Value::String("high".into())
        );
    }

    #[test]
    fn features_read_are_those_selected_unless_the_view_is_read_whole() {
        let features: Vec<Feature> = ["a", "b", "c"]
            .iter()
            .map(|name| Feature {
                name: name.to_string(),
                data_type: DataType::Float64,
                column: String::new(),
                description: None,
                tags: Default::default(),
            })
            .collect();
        let read = |expressions: &[&str]| {
            let expressions: Vec<String> = expressions.iter().map(|e| e.to_string()).collect();
            features_read(&expressions, "m", &features)
                .into_iter()
                .map(|(i, key)| (i, key.to_string()))
                .collect::<Vec<_>>()
        };
        let names = |indices: &[usize]| {
            indices
                .iter()
                .map(|&i| (i, features[i].name.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(read(&["request.x > m.c"]), names(&[2]));
        assert_eq!(read(&["m.c > 1.0", "has(m.a) ? m.a : 0.0"]), names(&[0, 2]));
        assert_eq!(read(&["[1, 2].map(x, x * m.b)[0] > m.z"]), names(&[1]));
        assert_eq!(read(&["request.x > 1.0"]), names(&[]));
        // Read whole, indexed or iterated: every feature.
        assert_eq!(read(&["m.a > 1.0", "size(m) > 2"]), names(&[0, 1, 2]));
        assert_eq!(read(&["m['b'] > 1.0"]), names(&[0, 1, 2]));
        assert_eq!(read(&["m.exists(k, k == 'a')"]), names(&[0, 1, 2]));
    }
}
