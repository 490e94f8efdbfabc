//! Realtime feature views (Tecton's `Calculation` features, without Python): typed outputs
//! computed at request time by Common Expression Language programs over the request context
//! (`request.<field>`) and the features of upstream views (`<view>.<feature>`). Programs are
//! compiled once, when the repository is loaded, and so is the list of upstream features they
//! read: a request row's CEL maps hold only those. An expression made only of selections,
//! literals and operators is evaluated straight over the row's values (`direct`); the others
//! run in the interpreter over CEL variables, which each thread keeps from its last row and
//! refills in place for the next (`with_row`).
//!
//! The parser, the interpreter and the walkers here recurse over an expression, and a stack
//! overflow aborts the process, so an expression is refused (as one that does not parse is)
//! past the limits below: on its text before the parser runs, on its tree after.

mod conversions;
mod direct;

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context, Program, Value as Cel};
use cel_parser::ast::{operators, EntryExpr, Expr, MapExpr, StructExpr};
use cel_parser::Expression;

use super::types::DataType;
use super::value::Value;
use super::{Feature, Field, ViewId};
pub use direct::Direct;

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
    /// expression reads, in index order; serving decodes only these. Keys are made once; a
    /// row's map clones them (an `Arc` each).
    pub reads: Vec<Vec<(usize, Key)>>,
    /// Parallel to `programs`: the expression's direct form, when it has one (`direct_form`).
    pub direct: Vec<Option<Direct>>,
}

/// The longest expression accepted, in bytes: bounds every chain the parser recurses over
/// without brackets (`a.b.c`, `1 + 2 + 3`, `x ? y : z ? ...`) to ~2000 links, which parse in
/// under 10 MiB of `PARSE_STACK` even in a debug build (1000 ternaries, the costliest; a
/// release build overflows 2 MiB at ~3200 of them, ~3800 `+`). Real features are a line or two.
const MAX_LENGTH: usize = 4096;

/// The deepest nesting of `(`, `[` and `{` accepted (outside string literals and comments).
/// The parser recurses hardest over brackets: on a 2 MiB stack (an actix worker's: actix-rt
/// starts them with std's default) a release build overflows at ~240 nested lists and ~280
/// parentheses, a debug build at 13 and 15. 32 is well past the 12 levels the CEL spec asks
/// implementations to support, and ~1/8 of the release overflow even on a worker's stack.
const MAX_NESTING: usize = 32;

/// The most `(`, `[` and `{` accepted in all, string literals and comments included: a bound on
/// the parser's nesting that no misreading of a literal by `brackets` can get around. 128 nested
/// brackets parse in ~20 MiB of stack in a debug build (it overflows `PARSE_STACK` at ~450),
/// ~1 MiB in a release one.
const MAX_BRACKETS: usize = 128;

/// The deepest expression tree accepted (a leaf is 1 deep). The interpreter (`Value::resolve`),
/// `Direct::evaluate` and the walkers here recurse once per level, on the worker serving the
/// request, and take no bound of their own: on a 2 MiB stack a release build's interpreter
/// overflows at ~1750 nested lists and ~3350 chained `+`, selections or method calls, a debug
/// build's at 62-67 of any (measured: 61 nested lists evaluate, 62 overflow; 66 `+`, 64
/// selections, 65 `?:`, 66 `&&` nested in brackets; `Value::resolve` has a ~32 KiB frame there).
/// 32 is half of that, so a debug server and the tests are safe too, and leaves room for a sum
/// of 30 terms. A chain of `+`, `-`, `*`, `/`, `%`, `?:` or selections is a tree as deep as it is
/// long, and the interpreter recurses through all of it, so each link counts (`check_tree` says
/// so when it refuses one); a chain of `&&` or `||` does not need to: the parser balances it,
/// and 4000 terms evaluate on 2 MiB in a debug build.
const MAX_DEPTH: usize = 32;

/// The most function calls (`f(x)`, `x.f(y)`) accepted around one another. Not for the stack:
/// the interpreter (cel-interpreter 0.10's `Value::resolve`) evaluates the first argument of a
/// call of one or two arguments twice, so each call around another doubles the time (measured,
/// release: 18 nested `int(...)` take 0.1 s, 20 take 0.5 s; 32 would take half an hour). 12 is
/// what the CEL spec asks implementations to support, and far more than features nest
/// (`int(double(request.x) * 100.0)` is 2).
const MAX_CALLS: usize = 12;

/// The stack the parser runs on (a thread of its own): its recursion must not depend on the
/// calling thread (an actix worker has 2 MiB, the main thread 8, a test thread 2) nor on the
/// build, and a debug build's parser takes ~150 KiB a nested bracket. Only the pages touched
/// are ever committed.
const PARSE_STACK: usize = 64 << 20;

/// Compiles an expression, checking that it only reads `request` and the upstream views and
/// that it is within the limits above.
pub fn compile(expression: &str, sources: &[String]) -> Result<Program, String> {
    check_text(expression)?;
    let program = on_parse_stack(|| {
        // Only a tree within `MAX_DEPTH` is compiled; the deeper one is dropped here, on the
        // large stack (dropping a tree recurses too).
        check_tree(&parse_tree(expression)?)?;
        // The parser panics on some malformed input instead of answering an error; a bad
        // repository must be reported, not crash the server.
        std::panic::catch_unwind(|| Program::compile(expression))
            .map_err(|_| format!("expression `{expression}` does not parse"))?
            .map_err(|e| format!("expression `{expression}` does not parse: {e}"))
    })??;

    let references = program.references();
    for variable in references.variables() {
        if variable != "request" && !sources.iter().any(|s| s == variable) {
            return Err(format!("expression `{expression}` reads `{variable}`, which is neither `request` nor an upstream view ({})", sources.join(", ")));
        }
    }
    Ok(program)
}

/// `expression` parsed, when it is within the limits above (checked before the parser runs,
/// on its text, and after, on its tree).
fn parse(expression: &str) -> Result<Expression, String> {
    check_text(expression)?;
    on_parse_stack(|| {
        let parsed = parse_tree(expression)?;
        check_tree(&parsed)?;
        Ok(parsed)
    })?
}

/// `expression`'s tree, whatever its depth: to be called on `PARSE_STACK` only.
fn parse_tree(expression: &str) -> Result<Expression, String> {
    std::panic::catch_unwind(|| cel_parser::Parser::default().parse(expression))
        .map_err(|_| format!("expression `{expression}` does not parse"))?
        .map_err(|e| format!("expression `{expression}` does not parse: {e}"))
}

/// Runs `work` on a thread with a `PARSE_STACK` stack and waits for it.
fn on_parse_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("cel-parser".to_string())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, work)
            .map_err(|e| format!("the expression parser could not start: {e}"))?
            .join()
            .map_err(|_| "the expression parser failed".to_string())
    })
}

/// Refuses a text the parser could overflow its stack on (`MAX_LENGTH`, `MAX_NESTING`,
/// `MAX_BRACKETS`). Names the limit, not the text (which may be kilobytes).
fn check_text(expression: &str) -> Result<(), String> {
    if expression.len() > MAX_LENGTH {
        return Err(format!(
            "the expression is {} bytes long; at most {MAX_LENGTH} are allowed",
            expression.len()
        ));
    }
    let (deepest, all) = brackets(expression);
    if deepest > MAX_NESTING {
        return Err(format!(
            "the expression nests brackets `(`, `[`, `{{` {deepest} deep; at most {MAX_NESTING} are allowed"
        ));
    }
    if all > MAX_BRACKETS {
        return Err(format!(
            "the expression has {all} opening brackets `(`, `[`, `{{`; at most {MAX_BRACKETS} are allowed"
        ));
    }
    Ok(())
}

/// The deepest nesting of `(`, `[` and `{` in `expression` outside string literals and
/// comments (read as CEL's grammar reads them), and how many of them it holds in all.
fn brackets(expression: &str) -> (usize, usize) {
    let text = expression.as_bytes();
    let all = text
        .iter()
        .filter(|b| matches!(b, b'(' | b'[' | b'{'))
        .count();
    let (mut depth, mut deepest) = (0usize, 0usize);
    // Where the last word (letters, digits, `_`) ended: a string's `r`/`br` prefix.
    let mut word = 0..0;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'/' if text.get(i + 1) == Some(&b'/') => {
                i = memchr::memchr(b'\n', &text[i..]).map_or(text.len(), |n| i + n);
            }
            quote @ (b'\'' | b'"') => {
                let raw = word.end == i
                    && matches!(
                        &text[word.clone()],
                        b"r" | b"R" | b"br" | b"bR" | b"Br" | b"BR"
                    );
                i = string_end(text, i, quote, raw);
                continue;
            }
            b if b.is_ascii_alphanumeric() || b == b'_' => {
                let start = i;
                while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == b'_') {
                    i += 1;
                }
                word = start..i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    (deepest, all)
}

/// Where the string literal opening at `start` with `quote` ends (one past its closing quote,
/// or the text's end). A single-quoted one ends at a newline too; a raw one has no escapes.
fn string_end(text: &[u8], start: usize, quote: u8, raw: bool) -> usize {
    let triple = text[start..].starts_with(&[quote; 3]);
    let mut i = start + if triple { 3 } else { 1 };
    while i < text.len() {
        match text[i] {
            b'\\' if !raw => i += 2,
            b if b == quote && (!triple || text[i..].starts_with(&[quote; 3])) => {
                return i + if triple { 3 } else { 1 };
            }
            b'\n' | b'\r' if !triple => return i,
            _ => i += 1,
        }
    }
    text.len()
}

/// Refuses a tree deeper than `MAX_DEPTH` or nesting more than `MAX_CALLS` function calls,
/// measured with a stack of its own (not recursion: the tree may be thousands deep). A tree too
/// deep is most often a long chain (`a + b + ... + z`, a level per `+`): the message names the
/// longest on the deepest path, so that what counts is plain.
fn check_tree(expression: &Expression) -> Result<(), String> {
    /// What lies above a node: its depth, the function calls around it, the chain of one
    /// kind of operator (`chain_of`) it continues and the longest such chain on the way.
    #[derive(Clone, Copy)]
    struct Above {
        depth: usize,
        calls: usize,
        chain: Option<(&'static str, usize)>,
        longest: Option<(&'static str, usize)>,
    }
    let (mut deepest, mut most_calls) = (0, 0);
    let mut deepest_chain = None;
    let top = Above {
        depth: 1,
        calls: 0,
        chain: None,
        longest: None,
    };
    let mut stack = vec![(expression, top)];
    while let Some((node, above)) = stack.pop() {
        if above.depth > deepest {
            deepest = above.depth;
            deepest_chain = above.longest;
        }
        most_calls = usize::max(most_calls, above.calls);
        // An operator's name (`_+_`, `!_`, `@in`) is no identifier; a function's is.
        let calls = match &node.expr {
            Expr::Call(call)
                if call
                    .func_name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                above.calls + 1
            }
            _ => above.calls,
        };
        let chain = chain_of(node).map(|kind| match above.chain {
            Some((above_kind, links)) if above_kind == kind => (kind, links + 1),
            _ => (kind, 1),
        });
        let below = Above {
            depth: above.depth + 1,
            calls,
            chain,
            longest: [above.longest, chain]
                .into_iter()
                .flatten()
                .max_by_key(|c| c.1),
        };
        stack.extend(children(node).into_iter().map(|child| (child, below)));
    }
    if deepest > MAX_DEPTH {
        let chain = match deepest_chain {
            Some((kind, links)) if links > 1 => {
                format!(" (each {kind} in a chain counts as a level; this one has {links})")
            }
            _ => String::new(),
        };
        return Err(format!(
            "the expression nests operations {deepest} deep; at most {MAX_DEPTH} are allowed{chain}"
        ));
    }
    if most_calls > MAX_CALLS {
        return Err(format!(
            "the expression nests {most_calls} function calls; at most {MAX_CALLS} are allowed"
        ));
    }
    Ok(())
}

/// The kind of chain a node links, if any: the operators the parser nests one in the next for
/// each operand (`a + b - c` is `(a + b) - c`), as deep as the chain is long. Not `&&` and
/// `||`: the parser balances their chains (as cel-go does), n terms ~log2(n) deep.
fn chain_of(node: &Expression) -> Option<&'static str> {
    Some(match &node.expr {
        Expr::Select(_) => "selection (`.` or `[]`)",
        Expr::Call(call) => match call.func_name.as_str() {
            operators::INDEX => "selection (`.` or `[]`)",
            operators::ADD | operators::SUBSTRACT => "`+` or `-`",
            operators::MULTIPLY | operators::DIVIDE | operators::MODULO => "`*`, `/` or `%`",
            operators::CONDITIONAL => "`?:`",
            _ => return None,
        },
        _ => return None,
    })
}

/// The operands of an expression's root.
fn children(expression: &Expression) -> Vec<&Expression> {
    match &expression.expr {
        Expr::Select(select) => vec![&select.operand],
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
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
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

/// The direct form of `expression` over upstream views `sources` (name, features; parallel to
/// the view's sources), when every node of it has one. Through `parse`, so that its tree, and
/// the recursion of `Direct::direct` and `Direct::evaluate` over it, is within `MAX_DEPTH`.
pub fn direct_form(expression: &str, sources: &[(&str, &[Feature])]) -> Option<Direct> {
    let parsed = parse(expression).ok()?;
    direct::Scope { sources }.direct(&parsed)
}

/// The fields of `variable` an expression selects; `None` when it reads `variable` otherwise
/// (or is refused by `parse`, which also bounds `selects_only`'s recursion).
fn fields_read(expression: &str, variable: &str) -> Option<Vec<String>> {
    let parsed = parse(expression).ok()?;
    let mut fields = Vec::new();
    selects_only(&parsed, variable, &mut fields).then_some(fields)
}

/// Adds to `fields` the fields of `variable` that `expression` selects; false when `variable`
/// appears other than as the operand of a selection.
fn selects_only(expression: &Expression, variable: &str, fields: &mut Vec<String>) -> bool {
    match &expression.expr {
        Expr::Select(select) => match &select.operand.expr {
            Expr::Ident(name) if name == variable => {
                fields.push(select.field.clone());
                return true;
            }
            _ => {}
        },
        Expr::Ident(name) => return name != variable,
        _ => {}
    }
    children(expression)
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
/// every call. Each evaluation's variables go in a child scope of it. `int` and `uint` replace
/// the crate's, which turn NaN and the range's ends into numbers (`conversions`).
static BUILTINS: LazyLock<Context<'static>> = LazyLock::new(|| {
    let mut builtins = Context::default();
    builtins.add_function("int", conversions::int);
    builtins.add_function("uint", conversions::uint);
    builtins
});

/// Runs a program with the given variables; an evaluation error (e.g. comparing with a missing
/// upstream value) yields null.
pub fn evaluate(program: &Program, variables: &[(&str, Cel)], data_type: &DataType) -> Value {
    let mut context = BUILTINS.new_inner_scope();
    for (name, value) in variables {
        context.add_variable_from_value(*name, value.clone());
    }
    run(program, &context, data_type)
}

fn run(program: &Program, context: &Context, data_type: &DataType) -> Value {
    // As at compile time, a panic inside the interpreter must not take the request down.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(context)))
        .ok()
        .and_then(Result::ok)
        .and_then(|result| from_cel(&result, data_type))
        .unwrap_or(Value::Null)
}

/// One request row of a realtime view: its request context and upstream values, and the CEL
/// variables over them (`request` and a map per upstream view), made the first time a program
/// without a direct form runs.
pub struct Row<'a> {
    spec: &'a RealtimeSpec,
    request: &'a [(&'a str, Value)],
    upstream: &'a [Vec<Value>],
    variables: OnceCell<(Context<'static>, RowVariables)>,
}

impl Row<'_> {
    /// The value of the view's feature `feature` over this row, as `evaluate` gives it.
    pub fn evaluate(&self, feature: usize, data_type: &DataType) -> Value {
        if let Some(direct) = &self.spec.direct[feature] {
            // A panic in an operator is the interpreter's own (it runs the same one): null.
            // As `run` reads the interpreter's outcome: a failure (or a panic in an operator,
            // which the interpreter would hit too) is null.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                direct.evaluate(self.request, self.upstream)
            })) {
                Ok(Ok(result)) => return from_cel(&result, data_type).unwrap_or(Value::Null),
                Ok(Err(direct::Failure::AskInterpreter)) => {}
                Ok(Err(direct::Failure::Fails)) | Err(_) => return Value::Null,
            }
        }
        let (context, _) = self.variables.get_or_init(|| {
            // This thread's kept variables, unless a row running around this one has them.
            let mut kept = LAST_ROW.with(|kept| std::mem::take(&mut *kept.borrow_mut()));
            kept.fill(self.spec, self.request, self.upstream);
            let context = Context::Child {
                parent: &BUILTINS,
                variables: std::mem::take(&mut kept.variables),
            };
            (context, kept)
        });
        run(&self.spec.programs[feature], context, data_type)
    }
}

thread_local! {
    /// This thread's last row's variables (see `with_row`).
    static LAST_ROW: RefCell<RowVariables> = RefCell::new(RowVariables::default());
}

/// CEL variables kept from one row to the next. Building them anew costs more than evaluating
/// a short expression (a hashed `String` per variable, a table and an `Arc` per map, SipHash per
/// entry); rows of one view have the same variables and fields, so the next row only writes
/// values into the tables in place, walking them in their (unchanged) iteration order. Holds
/// the last row's values until the thread's next row.
#[derive(Default)]
struct RowVariables {
    /// Variable name -> map, as a CEL context holds them (lent to one while a row runs).
    variables: HashMap<String, Cel>,
    /// For each entry of `variables` in iteration order, which variable it is: 0 `request`,
    /// k the view's source k - 1.
    order: Vec<usize>,
    /// Per variable (numbered as in `order`), which field each of its map's entries is, in
    /// the map's iteration order.
    fields: Vec<Vec<usize>>,
}

impl RowVariables {
    /// Sets the variables to `spec`'s over a row: `request` holds `request`, each source's map
    /// the features of `upstream` (parallel to `spec.sources`) its expressions read.
    fn fill(&mut self, spec: &RealtimeSpec, request: &[(&str, Value)], upstream: &[Vec<Value>]) {
        let n = 1 + spec.sources.len();
        let name = |v: usize| match v {
            0 => "request",
            _ => spec.sources[v - 1].1.as_str(),
        };
        let same_names = self.variables.len() == n
            && self.order.len() == n
            && self
                .variables
                .keys()
                .zip(&self.order)
                .all(|(k, &v)| k == name(v));
        if !same_names {
            self.variables = (0..n).map(|v| (name(v).to_owned(), Cel::Null)).collect();
            // As when added one by one, a later variable of the same name wins.
            self.order = self
                .variables
                .keys()
                .map(|k| (0..n).rev().find(|&v| name(v) == k).unwrap_or_default())
                .collect();
            self.fields = vec![Vec::new(); n];
        }
        for ((_, map), &v) in self.variables.iter_mut().zip(&self.order) {
            let order = &mut self.fields[v];
            if v == 0 {
                refill(
                    map,
                    order,
                    request.len(),
                    |key, i| matches!(key, Key::String(s) if **s == request[i].0),
                    |i| Key::from(request[i].0),
                    |i| to_cel(&request[i].1),
                );
            } else {
                let (reads, values) = (&spec.reads[v - 1], &upstream[v - 1]);
                refill(
                    map,
                    order,
                    reads.len(),
                    |key, i| *key == reads[i].1,
                    |i| reads[i].1.clone(),
                    |i| to_cel(&values[reads[i].0]),
                );
            }
        }
    }
}

/// Sets `map` to the CEL map of entries `0..len` (`key(i)`, `value(i)`). When it already holds
/// those keys, `order` saying which entry is where, only the values are written; otherwise it
/// is rebuilt and `order` with it.
fn refill(
    map: &mut Cel,
    order: &mut Vec<usize>,
    len: usize,
    is_key: impl Fn(&Key, usize) -> bool,
    key: impl Fn(usize) -> Key,
    value: impl Fn(usize) -> Cel,
) {
    if let Cel::Map(Map { map }) = map {
        // Not shared once the last row's evaluations are over (results are dropped).
        if let Some(entries) = Arc::get_mut(map) {
            let in_place = entries.len() == len
                && order.len() == len
                && entries.iter_mut().zip(order.iter()).all(|((k, v), &i)| {
                    let same = is_key(k, i);
                    if same {
                        *v = value(i);
                    }
                    same
                });
            if in_place {
                return;
            }
        }
    }
    let entries: HashMap<Key, Cel> = (0..len).map(|i| (key(i), value(i))).collect();
    // As when collected, a later entry of the same key wins.
    *order = entries
        .keys()
        .map(|k| (0..len).rev().find(|&i| is_key(k, i)).unwrap_or_default())
        .collect();
    *map = Cel::Map(Map {
        map: Arc::new(entries),
    });
}

/// Runs `run` over a request row of realtime view `spec`: `request` (the row's request
/// context, named by the service's fields, not copies of them) and, per upstream view
/// (parallel to `spec.sources`), its features' values. The row's CEL variables, if it made
/// them, go back to the thread for its next row.
pub fn with_row<R>(
    spec: &RealtimeSpec,
    request: &[(&str, Value)],
    upstream: &[Vec<Value>],
    run: impl FnOnce(&Row) -> R,
) -> R {
    let row = Row {
        spec,
        request,
        upstream,
        variables: OnceCell::new(),
    };
    let result = run(&row);
    if let Some((Context::Child { variables, .. }, mut kept)) = row.variables.into_inner() {
        kept.variables = variables;
        LAST_ROW.with(|last| *last.borrow_mut() = kept);
    }
    result
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

    /// A conversion whose value is NaN or out of the target's range fails, as the CEL spec has
    /// it (its conformance tests' bounds included), so the feature is null as for any failing
    /// expression, not a number made up; values in range convert as before.
    #[test]
    fn conversions_out_of_range_or_of_nan_fail() {
        let value = |expression: &str, x: f64, data_type: &DataType| {
            let program = compile(expression, &[]).unwrap();
            let request = map([("x", Cel::Float(x))].into_iter());
            evaluate(&program, &[("request", request)], data_type)
        };
        let int = |expression: &str, x: f64| value(expression, x, &DataType::Int64);
        let failing = [
            ("int(request.x)", f64::NAN),
            ("int(request.x)", f64::INFINITY),
            ("int(request.x)", f64::NEG_INFINITY),
            ("int(0.0 / 0.0)", 0.0),
            ("int(1e30)", 0.0),
            ("int(-9.3e18)", 0.0),
            // 2^63 and -2^63: the first is past `i64::MAX`, the crate's answer; the second is
            // refused by the spec's conformance tests (`double_int_min_range`).
            ("int(9223372036854775807.0)", 0.0),
            ("int(-9223372036854775808.0)", 0.0),
            ("int(9223372036854775808u)", 0.0),
            ("int('abc')", 0.0),
            ("uint(request.x)", f64::NAN),
            ("uint(request.x)", f64::INFINITY),
            ("uint(-1.0)", 0.0),
            ("uint(-0.5)", 0.0),
            ("uint(-1)", 0.0),
        ];
        for (expression, x) in failing {
            assert_eq!(int(expression, x), Value::Null, "{expression} over {x}");
        }
        // 2^64 was the largest uint (a number an Int64 feature cannot hold, so seen here).
        let is_max = "uint(request.x) == 18446744073709551615u";
        assert_eq!(
            value(is_max, 18446744073709551616.0, &DataType::Bool),
            Value::Null
        );
        assert_eq!(
            value(is_max, 18446744073709549568.0, &DataType::Bool),
            Value::Bool(false)
        );
        assert_eq!(value("double('x')", 0.0, &DataType::Float64), Value::Null);

        let converted = [
            ("int(request.x)", 2.7, 2),
            ("int(request.x)", -2.7, -2),
            ("int(request.x)", -0.0, 0),
            ("int(-9.2e18)", 0.0, -9_200_000_000_000_000_000),
            // The doubles nearest the ends, inside them.
            (
                "int(request.x)",
                9223372036854774784.0,
                9_223_372_036_854_774_784,
            ),
            (
                "int(request.x)",
                -9223372036854774784.0,
                -9_223_372_036_854_774_784,
            ),
            ("int('-12')", 0.0, -12),
            ("int(7u)", 0.0, 7),
            ("uint(request.x)", 3.9, 3),
            ("uint(request.x)", -0.0, 0),
            ("uint(5)", 0.0, 5),
        ];
        for (expression, x, expected) in converted {
            assert_eq!(
                int(expression, x),
                Value::Int64(expected),
                "{expression} over {x}"
            );
        }
        assert_eq!(
            value("double('1.5')", 0.0, &DataType::Float64),
            Value::Float64(1.5)
        );
    }

    /// Float64 features of these names.
    pub(super) fn float_features(names: &[&str]) -> Vec<Feature> {
        names
            .iter()
            .map(|name| Feature {
                name: name.to_string(),
                data_type: DataType::Float64,
                column: String::new(),
                description: None,
                tags: Default::default(),
            })
            .collect()
    }

    /// A view over sources `names`, one program per expression, reading what they select.
    fn spec(names: &[&str], features: &[&str], expressions: &[&str]) -> RealtimeSpec {
        let sources: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let expressions: Vec<String> = expressions.iter().map(|e| e.to_string()).collect();
        let features = float_features(features);
        let source_features: Vec<(&str, &[Feature])> =
            names.iter().map(|n| (*n, &features[..])).collect();
        RealtimeSpec {
            request_schema: Vec::new(),
            direct: expressions
                .iter()
                .map(|e| direct_form(e, &source_features))
                .collect(),
            programs: expressions
                .iter()
                .map(|e| compile(e, &sources).unwrap())
                .collect(),
            reads: sources
                .iter()
                .map(|s| features_read(&expressions, s, &features))
                .collect(),
            sources: sources
                .into_iter()
                .enumerate()
                .map(|(i, s)| (i as ViewId, s))
                .collect(),
            expressions,
        }
    }

    #[test]
    fn rows_kept_between_calls_give_what_fresh_variables_give() {
        let one = spec(
            &["m"],
            &["a", "b", "c"],
            &[
                "request.x > m.a",
                "m.b + m.c",
                "request",
                "size(request) + 0.0",
            ],
        );
        let two = spec(
            &["m", "n"],
            &["a", "b"],
            &["m.a + n.b", "m.b > n.a ? 1.0 : 2.0"],
        );
        let types = [
            DataType::Bool,
            DataType::Float64,
            DataType::String,
            DataType::Float64,
        ];
        // The model: every variable and map made anew, as `evaluate` takes them.
        let fresh = |spec: &RealtimeSpec, request: &[(&str, Value)], upstream: &[Vec<Value>]| {
            let mut variables =
                vec![("request", map(request.iter().map(|(k, v)| (*k, to_cel(v)))))];
            for ((_, name), (reads, values)) in
                spec.sources.iter().zip(spec.reads.iter().zip(upstream))
            {
                let features = reads
                    .iter()
                    .map(|(i, key)| (key.clone(), to_cel(&values[*i])));
                variables.push((name.as_str(), map(features)));
            }
            spec.programs
                .iter()
                .zip(&types)
                .map(|(program, data_type)| evaluate(program, &variables, data_type))
                .collect::<Vec<_>>()
        };
        let kept = |spec: &RealtimeSpec, request: &[(&str, Value)], upstream: &[Vec<Value>]| {
            with_row(spec, request, upstream, |row| {
                types
                    .iter()
                    .take(spec.programs.len())
                    .enumerate()
                    .map(|(feature, data_type)| row.evaluate(feature, data_type))
                    .collect::<Vec<_>>()
            })
        };
        let request = |fields: &[(&'static str, f64)]| -> Vec<(&'static str, Value)> {
            fields
                .iter()
                .map(|(k, v)| (*k, Value::Float64(*v)))
                .collect()
        };
        let floats = |v: &[f64]| v.iter().map(|f| Value::Float64(*f)).collect::<Vec<_>>();
        let (a, b, c) = (
            floats(&[1.0, 2.0, 3.0]),
            floats(&[5.0, -1.0, 0.5]),
            floats(&[0.25, 9.0]),
        );
        let nulls = vec![Value::Null; 3];
        // Same view and fields, other values; other request fields; another view between.
        let rows = [
            (&one, request(&[("x", 0.5)]), vec![a.clone()]),
            (&one, request(&[("x", 7.0)]), vec![b.clone()]),
            (
                &one,
                request(&[("x", 7.0), ("y", 1.0)]),
                vec![nulls.clone()],
            ),
            (&one, request(&[("y", 1.0)]), vec![a.clone()]),
            (&two, request(&[]), vec![a.clone(), c.clone()]),
            (&two, request(&[("x", 1.0)]), vec![c.clone(), b.clone()]),
            (&one, request(&[("x", 2.5)]), vec![b.clone()]),
            (&one, request(&[("x", 2.5)]), vec![a.clone()]),
        ];
        for (spec, request, upstream) in &rows {
            assert_eq!(
                kept(spec, request, upstream),
                fresh(spec, request, upstream)
            );
        }
        // A row started while another runs on this thread gets variables of its own.
        let (outer, inner) = with_row(&one, &rows[0].1, &rows[0].2, |row| {
            let inner = kept(&two, &rows[4].1, &rows[4].2);
            (row.evaluate(1, &DataType::Float64), inner)
        });
        assert_eq!(outer, Value::Float64(5.0));
        assert_eq!(inner, fresh(&two, &rows[4].1, &rows[4].2));
    }

    #[test]
    fn the_demo_realtime_feature_is_evaluated_directly() {
        let settings = crate::config::Settings::load(
            std::path::Path::new("config.toml"),
            &crate::config::Overrides::default(),
        )
        .unwrap();
        let registry = crate::registry::load_registry(&settings.workspaces).unwrap();
        let view = registry
            .view_by_name("prod", "transaction_amount_is_higher_than_average")
            .unwrap();
        let crate::registry::ViewKind::Realtime(spec) = &view.kind else {
            panic!("a realtime view");
        };
        assert!(matches!(spec.direct[..], [Some(_)]), "{:?}", spec.direct);
    }

    /// `open` n times, `inner`, `close` n times.
    fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    /// Every shape the parser or the interpreter recurses over: accepted at its limit (and
    /// evaluated there, on this test's 2 MiB thread, as a worker would), refused past it with
    /// the limit named, and refused far past it (the reviewer's overflows) before the parser
    /// runs.
    #[test]
    fn expressions_nested_past_the_limits_are_refused() {
        let sources = vec!["m".to_string()];
        let refused = |expression: &str, expected: &str| {
            let message = compile(expression, &sources).unwrap_err();
            assert!(message.contains(expected), "{message}");
            // Nor do the other readers of an expression take its tree.
            assert_eq!(direct_form(expression, &[]), None);
            assert_eq!(fields_read(expression, "m"), None);
        };
        let evaluated = |expression: &str, data_type: &DataType| {
            let program = compile(expression, &sources).unwrap();
            let request = map([("x", Cel::Int(1)), ("a", Cel::Null)].into_iter());
            evaluate(&program, &[("request", request)], data_type)
        };
        let brackets_past = format!("{} deep; at most {MAX_NESTING}", MAX_NESTING + 1);
        let tree_past = format!("{} deep; at most {MAX_DEPTH}", MAX_DEPTH + 1);
        let int = DataType::Int64;

        // Parentheses make no node: only the brackets' limit holds them.
        let parens = |n| nested("(", "request.x + 1", ")", n);
        assert_eq!(evaluated(&parens(MAX_NESTING), &int), Value::Int64(2));
        refused(&parens(MAX_NESTING + 1), &brackets_past);
        refused(&parens(400), "400 deep; at most 32");

        // Lists and maps: a node a level, the innermost value one more.
        let lists = |n| nested("[", "1", "]", n);
        assert_eq!(evaluated(&lists(MAX_DEPTH - 1), &int), Value::Null);
        refused(&lists(MAX_DEPTH), &tree_past);
        assert!(!compile(&lists(MAX_DEPTH), &sources)
            .unwrap_err()
            .contains("chain"));
        refused(&lists(300), "300 deep; at most 32");
        let maps = |n| nested("{'k': ", "1", "}", n);
        assert_eq!(evaluated(&maps(MAX_DEPTH - 1), &int), Value::Null);
        refused(&maps(MAX_DEPTH), &tree_past);

        // Chains without brackets: as deep as they are long (and `request.x` two more).
        let sum = |terms: usize| format!("request.x{}", " + 1".repeat(terms - 1));
        assert_eq!(evaluated(&sum(MAX_DEPTH - 1), &int), Value::Int64(31));
        refused(&sum(MAX_DEPTH), &tree_past);
        // The message says what counts: here 31 `+`, then `request.x`.
        refused(
            &sum(MAX_DEPTH),
            "(each `+` or `-` in a chain counts as a level; this one has 31)",
        );
        let mixed = |terms: usize| format!("request.x{}", " + 2 - 1".repeat(terms / 2));
        assert_eq!(evaluated(&mixed(MAX_DEPTH - 2), &int), Value::Int64(16));
        refused(
            &mixed(MAX_DEPTH),
            "`+` or `-` in a chain counts as a level; this one has 32)",
        );
        refused(&sum(1000), "1001 deep; at most 32");
        refused(&sum(4000), "bytes long; at most 4096");
        let member = |n| format!("request{} == 1", ".a".repeat(n));
        // The `==`, the selections, then `request`.
        assert_eq!(
            evaluated(&member(MAX_DEPTH - 2), &DataType::Bool),
            Value::Null
        );
        refused(&member(MAX_DEPTH - 1), &tree_past);
        refused(
            &member(MAX_DEPTH - 1),
            "(each selection (`.` or `[]`) in a chain counts as a level; this one has 31)",
        );
        refused(&member(1500), "1502 deep; at most 32");
        refused(&member(3000), "bytes long; at most 4096");
        let ternary = |n| format!("{}request.x", "request.x == 0 ? 0 : ".repeat(n));
        // The innermost condition's `==`, then `request.x`.
        assert_eq!(evaluated(&ternary(MAX_DEPTH - 3), &int), Value::Int64(1));
        refused(&ternary(MAX_DEPTH - 2), &tree_past);
        refused(
            &ternary(MAX_DEPTH - 2),
            "`?:` in a chain counts as a level; this one has 30)",
        );

        // Function calls: limited for the interpreter's time (each doubles it).
        let calls = |n| nested("int(", "request.x", ")", n);
        assert_eq!(evaluated(&calls(MAX_CALLS), &int), Value::Int64(1));
        refused(&calls(MAX_CALLS + 1), "nests 13 function calls; at most 12");
        let methods = |n| nested("string(", "request.x", ").size()", n);
        assert_eq!(evaluated(&methods(MAX_CALLS / 2), &int), Value::Int64(1));
        refused(&methods(MAX_CALLS), "nests 24 function calls; at most 12");

        // Brackets inside string literals nest nothing, but count toward the total.
        let quoted = |n| format!("request.s == '{}'", "(".repeat(n));
        assert!(compile(&quoted(MAX_BRACKETS), &sources).is_ok());
        refused(&quoted(MAX_BRACKETS + 1), "has 129 opening brackets");
    }

    /// The stack of the threads expressions are evaluated on: an actix worker's, which actix-rt
    /// spawns with std's default.
    const WORKER_STACK: usize = 2 << 20;

    /// A flat chain of `&&` or `||` is not as deep as it is long: the parser balances it (as
    /// cel-go does), so 200 terms are 8 `&&` deep (11 with `request.x == 1`), accepted, and
    /// evaluated on a worker's stack by the interpreter and by the direct form alike (measured in
    /// a debug build on 2 MiB: over 4000 terms of either evaluate, where 67 `+` overflow).
    #[test]
    fn flat_and_or_chains_are_balanced_not_nested() {
        let chain = |term: &str, operator: &str| vec![term; 200].join(operator);
        let cases = [
            (chain("request.x == 1", " && "), true),
            (chain("request.x == 2", " || "), false),
            (
                format!("{} || request.x == 1", chain("request.x == 2", " || ")),
                true,
            ),
        ];
        for (expression, expected) in cases {
            let view = spec(&[], &[], &[&expression]);
            assert!(view.direct[0].is_some(), "{expression}");
            let request = [("x", Value::Int64(1))];
            let (direct, interpreted) = std::thread::scope(|scope| {
                std::thread::Builder::new()
                    .stack_size(WORKER_STACK)
                    .spawn_scoped(scope, || {
                        let direct =
                            with_row(&view, &request, &[], |row| row.evaluate(0, &DataType::Bool));
                        let variables = [("request", map([("x", Cel::Int(1))].into_iter()))];
                        let interpreted = evaluate(&view.programs[0], &variables, &DataType::Bool);
                        (direct, interpreted)
                    })
                    .unwrap()
                    .join()
                    .unwrap()
            });
            assert_eq!(direct, Value::Bool(expected), "{expression}");
            assert_eq!(interpreted, Value::Bool(expected), "{expression}");
        }
    }

    /// The direct form is held to the same tree, and evaluates at its limit.
    #[test]
    fn direct_forms_are_within_the_depth_limit() {
        let chain = |terms: usize| format!("m.a{}", " + 1.0".repeat(terms - 1));
        let view = spec(&["m"], &["a"], &[&chain(MAX_DEPTH - 1)]);
        assert!(view.direct[0].is_some());
        let upstream = [vec![Value::Float64(0.5)]];
        let value = with_row(&view, &[], &upstream, |row| {
            row.evaluate(0, &DataType::Float64)
        });
        assert_eq!(value, Value::Float64(30.5));
        let features = float_features(&["a"]);
        assert_eq!(
            direct_form(&chain(MAX_DEPTH), &[("m", &features[..])]),
            None
        );
    }

    #[test]
    fn brackets_in_string_literals_and_comments_nest_nothing() {
        assert_eq!(brackets("(a[0] + {'k': 1}['k'])"), (2, 4));
        assert_eq!(brackets(r#"'((' + "[[" + '''{'{''' + """)""""#), (0, 6));
        // A raw string has no escapes: its backslash ends nothing.
        assert_eq!(brackets(r"r'\' + (1)"), (1, 1));
        assert_eq!(brackets(r"R'\' + (1)"), (1, 1));
        assert_eq!(brackets(r"br'\' + (1)"), (1, 1));
        assert_eq!(brackets(r"'\' + (1)'"), (0, 1));
        assert_eq!(brackets(r"'\\' + (1)"), (1, 1));
        // Nor is `rb` a raw prefix: `rb'...'` is the name `rb`, then a string.
        assert_eq!(brackets(r"rb'\' + (1)'"), (0, 1));
        // A single-quoted string ends at a newline; a triple-quoted one does not.
        assert_eq!(brackets("'((\n(1)"), (1, 3));
        assert_eq!(brackets("'''((\n(1)''' + [2]"), (1, 4));
        assert_eq!(brackets("1 // it's ((\n + (2)"), (1, 3));
        assert_eq!(brackets("((1)) + (2"), (2, 3));
    }

    #[test]
    fn features_read_are_those_selected_unless_the_view_is_read_whole() {
        let features = float_features(&["a", "b", "c"]);
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
