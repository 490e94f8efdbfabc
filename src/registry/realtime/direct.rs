//! Expressions evaluated straight over a row's values, without CEL variables: the common
//! realtime feature (`request.amount > metrics.amt_mean_1d`) compares and computes over
//! selected fields, and building the CEL maps for it costs several times the evaluation.
//!
//! A `Direct` is made at load from the parsed expression when every node is one it knows: a
//! literal, `request.<field>`, `<source>.<feature>`, the arithmetic and comparison operators,
//! `&&`, `||`, `!`, unary minus and `?:`. Each node does exactly what cel-interpreter's
//! `Value::resolve` does for it, through the same operator implementations on the same CEL
//! values, so the result is the interpreter's. A node fails exactly where the interpreter's
//! `resolve` returns an error (values it cannot compare, an overflow, an operand that failed),
//! and a failure propagates as the interpreter's `?` propagates it, so a `Direct` fails when
//! the program would; serving reads any failure as null. The one node whose outcome depends
//! on more than the row is a request field the row lacks (the interpreter then looks for a
//! CEL function of that name): there a `Direct` asks the caller to run the interpreter.

use std::cmp::Ordering;

use cel_interpreter::Value as Cel;
use cel_parser::ast::{operators, Expr};
use cel_parser::Expression;

use super::to_cel;
use crate::registry::value::Value;
use crate::registry::Feature;

/// An expression in the form `evaluate` runs; see the module's doc.
#[derive(Debug, Clone, PartialEq)]
pub enum Direct {
    Literal(Cel),
    /// `request.<field>`.
    Request(String),
    /// `<source>.<feature>`: the source's place in the view's sources, the feature's in that
    /// view's features.
    Upstream {
        source: usize,
        feature: usize,
    },
    Binary(Operator, Box<Direct>, Box<Direct>),
    And(Box<Direct>, Box<Direct>),
    Or(Box<Direct>, Box<Direct>),
    Not(Box<Direct>),
    Negate(Box<Direct>),
    Conditional(Box<Direct>, Box<Direct>, Box<Direct>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Equals,
    NotEquals,
    Less,
    LessEquals,
    Greater,
    GreaterEquals,
}

impl Operator {
    fn named(name: &str) -> Option<Operator> {
        Some(match name {
            operators::ADD => Operator::Add,
            operators::SUBSTRACT => Operator::Subtract,
            operators::MULTIPLY => Operator::Multiply,
            operators::DIVIDE => Operator::Divide,
            operators::MODULO => Operator::Modulo,
            operators::EQUALS => Operator::Equals,
            operators::NOT_EQUALS => Operator::NotEquals,
            operators::LESS => Operator::Less,
            operators::LESS_EQUALS => Operator::LessEquals,
            operators::GREATER => Operator::Greater,
            operators::GREATER_EQUALS => Operator::GreaterEquals,
            _ => return None,
        })
    }

    /// As the interpreter applies it, failing where it fails.
    fn apply(self, left: Cel, right: Cel) -> Result<Cel, Failure> {
        let ordered = |accept: fn(Ordering) -> bool| {
            left.partial_cmp(&right)
                .map(|ordering| Cel::Bool(accept(ordering)))
                .ok_or(Failure::Fails)
        };
        let computed = |result: Result<Cel, _>| result.map_err(|_| Failure::Fails);
        match self {
            Operator::Add => computed(left + right),
            Operator::Subtract => computed(left - right),
            Operator::Multiply => computed(left * right),
            Operator::Divide => computed(left / right),
            Operator::Modulo => computed(left % right),
            Operator::Equals => Ok(Cel::Bool(left == right)),
            Operator::NotEquals => Ok(Cel::Bool(left != right)),
            Operator::Less => ordered(|o| o == Ordering::Less),
            Operator::LessEquals => ordered(|o| o != Ordering::Greater),
            Operator::Greater => ordered(|o| o == Ordering::Greater),
            Operator::GreaterEquals => ordered(|o| o != Ordering::Less),
        }
    }
}

/// Why a `Direct` has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The interpreter fails here too.
    Fails,
    /// Only the interpreter knows: the row lacks a request field the expression reads.
    AskInterpreter,
}

/// Where a `Direct` finds a selection's operand: `request`, or the upstream views by name
/// with their features.
pub struct Scope<'a> {
    pub sources: &'a [(&'a str, &'a [Feature])],
}

impl Scope<'_> {
    /// `expression` as a `Direct`, or `None` when it has a node the interpreter must run.
    pub fn direct(&self, expression: &Expression) -> Option<Direct> {
        Some(match &expression.expr {
            Expr::Literal(literal) => Direct::Literal(Cel::from(literal.clone())),
            Expr::Select(select) if !select.test => {
                let Expr::Ident(variable) = &select.operand.expr else {
                    return None;
                };
                // As in the interpreter's scope, a later variable of a name wins.
                match self.sources.iter().rposition(|(name, _)| name == variable) {
                    Some(source) => Direct::Upstream {
                        source,
                        feature: self.sources[source]
                            .1
                            .iter()
                            .position(|f| f.name == select.field)?,
                    },
                    None if variable == "request" => Direct::Request(select.field.clone()),
                    None => return None,
                }
            }
            Expr::Call(call) if call.target.is_none() => {
                let arg = |i: usize| self.direct(&call.args[i]).map(Box::new);
                match (call.func_name.as_str(), call.args.len()) {
                    (operators::CONDITIONAL, 3) => Direct::Conditional(arg(0)?, arg(1)?, arg(2)?),
                    (operators::LOGICAL_AND, 2) => Direct::And(arg(0)?, arg(1)?),
                    (operators::LOGICAL_OR, 2) => Direct::Or(arg(0)?, arg(1)?),
                    (operators::LOGICAL_NOT, 1) => Direct::Not(arg(0)?),
                    (operators::NEGATE, 1) => Direct::Negate(arg(0)?),
                    (name, 2) => Direct::Binary(Operator::named(name)?, arg(0)?, arg(1)?),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }
}

impl Direct {
    /// The expression's value over a row: `request` its request context (a later entry of a
    /// name wins, as in a CEL map built from it), `upstream` each source's feature values.
    /// Recurses once a level: `direct_form` makes a `Direct` only of a tree within `MAX_DEPTH`.
    pub fn evaluate(
        &self,
        request: &[(&str, Value)],
        upstream: &[Vec<Value>],
    ) -> Result<Cel, Failure> {
        let run = |d: &Direct| d.evaluate(request, upstream);
        match self {
            Direct::Literal(value) => Ok(value.clone()),
            Direct::Request(field) => request
                .iter()
                .rev()
                .find(|(name, _)| name == field)
                .map(|(_, value)| to_cel(value))
                .ok_or(Failure::AskInterpreter),
            Direct::Upstream { source, feature } => upstream
                .get(*source)
                .and_then(|values| values.get(*feature))
                .map(to_cel)
                .ok_or(Failure::AskInterpreter),
            Direct::Binary(operator, left, right) => operator.apply(run(left)?, run(right)?),
            // Short-circuits as the interpreter does: a false left operand hides the right
            // one, even a failing one.
            Direct::And(left, right) => Ok(Cel::Bool(truthy(&run(left)?) && truthy(&run(right)?))),
            Direct::Or(left, right) => {
                let left = run(left)?;
                if truthy(&left) {
                    Ok(left)
                } else {
                    run(right)
                }
            }
            Direct::Not(operand) => Ok(Cel::Bool(!truthy(&run(operand)?))),
            Direct::Negate(operand) => match run(operand)? {
                Cel::Int(i) => Ok(Cel::Int(-i)),
                Cel::Float(f) => Ok(Cel::Float(-f)),
                _ => Err(Failure::Fails),
            },
            Direct::Conditional(condition, then, otherwise) => {
                if truthy(&run(condition)?) {
                    run(then)
                } else {
                    run(otherwise)
                }
            }
        }
    }
}

/// A value as the interpreter's `&&`, `||`, `!` and `?:` read it (its `to_bool`, which is
/// private to the crate).
fn truthy(value: &Cel) -> bool {
    match value {
        Cel::List(items) => !items.is_empty(),
        Cel::Map(map) => !map.map.is_empty(),
        Cel::Int(i) => *i != 0,
        Cel::UInt(u) => *u != 0,
        Cel::Float(f) => *f != 0.0,
        Cel::String(s) => !s.is_empty(),
        Cel::Bytes(b) => !b.is_empty(),
        Cel::Bool(b) => *b,
        Cel::Null | Cel::Function(..) => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::tests::float_features as features;
    use super::super::{
        compile, direct_form, evaluate, features_read, map, to_cel, with_row, RealtimeSpec,
    };
    use crate::registry::types::DataType;
    use crate::registry::value::Value;
    use crate::registry::ViewId;

    /// Expressions over `request`, sources `m` (features a, b) and `n` (feature a): operands
    /// of every kind, operators nested; `m.zzz` (no such feature) and `has(...)` have no direct
    /// form.
    fn expression() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(vec![
            "0",
            "7",
            "-3",
            "9223372036854775807",
            "3u",
            "0u",
            "1.5",
            "0.0",
            "-2.25",
            "1e308",
            "true",
            "false",
            "null",
            "'a'",
            "''",
            "request.x",
            "request.y",
            "request.missing",
            "request.size",
            "m.a",
            "m.b",
            "n.a",
            "m.zzz",
            "has(request.x)",
        ])
        .prop_map(str::to_string);
        leaf.prop_recursive(4, 24, 3, |inner| {
            let operator = prop::sample::select(vec![
                "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||",
            ]);
            prop_oneof![
                (inner.clone(), operator, inner.clone())
                    .prop_map(|(l, o, r)| format!("({l} {o} {r})")),
                inner.clone().prop_map(|e| format!("!({e})")),
                inner.clone().prop_map(|e| format!("-({e})")),
                (inner.clone(), inner.clone(), inner)
                    .prop_map(|(c, t, f)| format!("({c} ? {t} : {f})")),
            ]
        })
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop::sample::select(vec![0i64, 1, -1, 3, i64::MAX, i64::MIN]).prop_map(Value::Int64),
            prop::sample::select(vec![0.0, -0.0, 1.5, -2.25, f64::NAN, f64::INFINITY, 1e308])
                .prop_map(Value::Float64),
            prop::sample::select(vec!["", "a", "b"]).prop_map(|s| Value::String(s.into())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A direct form gives what the interpreter gives over the same row, for every
        /// declared type; an expression of known nodes always has one.
        #[test]
        fn direct_forms_give_what_the_interpreter_gives(
            expression in expression(),
            x in value(),
            y in value(),
            m in prop::collection::vec(value(), 2),
            n in value(),
            data_type in prop::sample::select(vec![DataType::Bool, DataType::Int64, DataType::Float64, DataType::String]),
        ) {
            let sources = vec!["m".to_string(), "n".to_string()];
            let Ok(program) = compile(&expression, &sources) else {
                return Ok(());
            };
            let (m_features, n_features) = (features(&["a", "b"]), features(&["a"]));
            let scope = [("m", &m_features[..]), ("n", &n_features[..])];
            let direct = direct_form(&expression, &scope);
            if !expression.contains("zzz") && !expression.contains("has(") {
                prop_assert!(direct.is_some(), "no direct form for {expression}");
            }
            let spec = RealtimeSpec {
                request_schema: Vec::new(),
                sources: vec![(1 as ViewId, "m".into()), (2, "n".into())],
                reads: vec![
                    features_read(std::slice::from_ref(&expression), "m", &m_features),
                    features_read(std::slice::from_ref(&expression), "n", &n_features),
                ],
                programs: vec![program],
                expressions: vec![expression.clone()],
                direct: vec![direct],
            };
            let request = vec![("x", x), ("y", y)];
            let upstream = [m, vec![n]];
            let (m, n) = (&upstream[0], &upstream[1]);
            let served = with_row(&spec, &request, &upstream, |row| row.evaluate(0, &data_type));
            let variables = [
                ("request", map(request.iter().map(|(k, v)| (*k, to_cel(v))))),
                ("m", map([("a", to_cel(&m[0])), ("b", to_cel(&m[1]))].into_iter())),
                ("n", map([("a", to_cel(&n[0]))].into_iter())),
            ];
            let interpreted = evaluate(&spec.programs[0], &variables, &data_type);
            // Debug output, so that NaN equals NaN.
            prop_assert_eq!(format!("{served:?}"), format!("{interpreted:?}"), "{}", expression);
        }
    }
}
