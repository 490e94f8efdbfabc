//! Typed feature values, and their two JSON encodings: the lenient one clients send (int64 as a
//! string or a number, floats as numbers or `"NaN"`) and the one Tecton's clients read back.

use serde::de::{DeserializeSeed, Error as DeError, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

use super::types::DataType;
use crate::echo::echo;
use crate::time::{ascii_number, format_timestamp, parse_timestamp, Micros};

/// One value of a feature, join key or request-context field.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Timestamp(Micros),
    Array(Vec<Value>),
    /// Field values in the struct type's field order.
    Struct(Vec<Value>),
    /// Entries in the order they were given.
    Map(Vec<(String, Value)>),
}

/// How strictly `Value::from_json_with` reads JSON.
#[derive(Debug, Clone, Copy)]
pub struct JsonRules {
    /// Floats may come as numeric strings (`"1.5"`); otherwise only `"NaN"`, `"Infinity"` and
    /// `"-Infinity"` are strings.
    pub numeric_float_strings: bool,
    /// A struct given as an object may carry fields its type lacks (they are dropped).
    pub extra_struct_fields: bool,
}

impl JsonRules {
    /// Ingested rows and join keys: floats as numbers or any numeric string, exact structs.
    pub const LENIENT: JsonRules = JsonRules {
        numeric_float_strings: true,
        extra_struct_fields: false,
    };
}

impl Value {
    /// Reads a JSON value as `data_type` under `JsonRules::LENIENT`.
    pub fn from_json(json: &Json, data_type: &DataType) -> Result<Value, String> {
        Value::from_json_with(json, data_type, JsonRules::LENIENT)
    }

    /// Reads a JSON value as `data_type`; int64 as a string or a number, floats as numbers or
    /// the strings `rules` allow. The error says what was expected, for the caller to prefix
    /// with the field's name.
    pub fn from_json_with(
        json: &Json,
        data_type: &DataType,
        rules: JsonRules,
    ) -> Result<Value, String> {
        if json.is_null() {
            return Ok(Value::Null);
        }
        let mismatch = || {
            format!(
                "expected {}, got {}",
                describe(data_type),
                echo(&json.to_string())
            )
        };
        match data_type {
            DataType::Bool => json.as_bool().map(Value::Bool).ok_or_else(mismatch),
            DataType::Int64 => match json {
                Json::Number(n) => n.as_i64().map(Value::Int64).ok_or_else(mismatch),
                Json::String(s) => s.trim().parse().map(Value::Int64).map_err(|_| mismatch()),
                _ => Err(mismatch()),
            },
            DataType::Float32 => float_from_json(json, rules)
                .map(|f| Value::Float32(f as f32))
                .ok_or_else(mismatch),
            DataType::Float64 => float_from_json(json, rules)
                .map(Value::Float64)
                .ok_or_else(mismatch),
            DataType::String => json
                .as_str()
                .map(|s| Value::String(s.to_string()))
                .ok_or_else(mismatch),
            DataType::Timestamp => match json {
                Json::String(s) => parse_timestamp(s).map(Value::Timestamp),
                _ => Err(mismatch()),
            },
            DataType::Array(element) => {
                let items = json.as_array().ok_or_else(mismatch)?;
                let values = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        Value::from_json_with(item, element, rules)
                            .map_err(|e| format!("[{i}]: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Value::Array(values))
            }
            DataType::Struct(fields) => match json {
                Json::Array(items) if items.len() == fields.len() => {
                    let values = fields
                        .iter()
                        .zip(items)
                        .map(|(field, item)| {
                            Value::from_json_with(item, &field.data_type, rules)
                                .map_err(|e| format!(".{}: {e}", field.name))
                        })
                        .collect::<Result<_, _>>()?;
                    Ok(Value::Struct(values))
                }
                Json::Object(object) => {
                    if let Some(unknown) = object.keys().find(|k| {
                        !rules.extra_struct_fields && !fields.iter().any(|f| &f.name == *k)
                    }) {
                        return Err(format!(
                            "unknown struct field `{}` (expected {})",
                            echo(unknown),
                            describe(data_type)
                        ));
                    }
                    let values = fields
                        .iter()
                        .map(|field| {
                            let item = object.get(&field.name).unwrap_or(&Json::Null);
                            Value::from_json_with(item, &field.data_type, rules)
                                .map_err(|e| format!(".{}: {e}", field.name))
                        })
                        .collect::<Result<_, _>>()?;
                    Ok(Value::Struct(values))
                }
                _ => Err(mismatch()),
            },
            DataType::Map(value_type) => {
                let object = json.as_object().ok_or_else(mismatch)?;
                let entries = object
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            Value::from_json_with(v, value_type, rules)
                                .map_err(|e| format!("[\"{}\"]: {e}", echo(k)))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?;
                Ok(Value::Map(entries))
            }
        }
    }

    /// Reads one CSV cell as `data_type`: an empty cell is null, scalars are plain text and
    /// arrays, structs and maps are JSON.
    pub fn from_text(text: &str, data_type: &DataType) -> Result<Value, String> {
        Ok(match TextValue::read(text, data_type)? {
            TextValue::String(text) => Value::String(text.to_string()),
            TextValue::Other(value) => value,
        })
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// One CSV cell read by `Value::from_text`'s rules, a string left borrowed from the cell: what
/// the bulk loader encodes without copying a string cell first (~150 instructions a cell).
#[derive(Debug, Clone, PartialEq)]
pub enum TextValue<'a> {
    /// A string column's cell, never empty (an empty cell is null).
    String(&'a str),
    /// Every other cell, null included.
    Other(Value),
}

impl TextValue<'_> {
    /// Reads one CSV cell as `data_type`: an empty cell is null, scalars are plain text and
    /// arrays, structs and maps are JSON.
    pub fn read<'a>(text: &'a str, data_type: &DataType) -> Result<TextValue<'a>, String> {
        if text.is_empty() {
            return Ok(TextValue::Other(Value::Null));
        }
        let mismatch = || format!("expected {}, got `{}`", describe(data_type), echo(text));
        let value = match data_type {
            // Compared without lowercasing a copy: one allocation less for every boolean cell.
            DataType::Bool if text == "1" || text.eq_ignore_ascii_case("true") => Value::Bool(true),
            DataType::Bool if text == "0" || text.eq_ignore_ascii_case("false") => {
                Value::Bool(false)
            }
            DataType::Bool => return Err(mismatch()),
            DataType::Int64 => Value::Int64(int_cell(text).ok_or_else(mismatch)?),
            DataType::Float32 => Value::Float32(parse_float(text).ok_or_else(mismatch)? as f32),
            DataType::Float64 => Value::Float64(parse_float(text).ok_or_else(mismatch)?),
            DataType::String => return Ok(TextValue::String(text)),
            DataType::Timestamp => Value::Timestamp(parse_timestamp(text)?),
            DataType::Array(_) | DataType::Struct(_) | DataType::Map(_) => {
                // Read by a `ValueSeed` (an array without a JSON tree: ~1.4k instructions a
                // cell less); a cell it declines is read again as a tree, which words the
                // refusal. The seed takes exactly what the tree takes, as the same value.
                let mut cell = serde_json::Deserializer::from_str(text);
                match ValueSeed(data_type).deserialize(&mut cell) {
                    Ok(value) if cell.end().is_ok() => value,
                    _ => {
                        let json: Json = serde_json::from_str(text).map_err(|_| mismatch())?;
                        Value::from_json(&json, data_type)?
                    }
                }
            }
        };
        Ok(TextValue::Other(value))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, TextValue::Other(Value::Null))
    }
}

/// A CSV cell as an `int64`, read as `str::trim` then `str::parse` read it: a cell of 1 to 18
/// plain digits (the common one, which cannot overflow) without either, ~100 instructions a
/// cell less.
fn int_cell(text: &str) -> Option<i64> {
    let plain = (1..=18)
        .contains(&text.len())
        .then(|| ascii_number(text.as_bytes()))
        .flatten();
    plain.or_else(|| text.trim().parse().ok())
}

/// Reads one JSON value straight from a deserializer as `data_type` (no `Json` tree for scalars
/// and arrays; structs and maps go through one), accepting exactly what `Value::from_json`
/// accepts. Its errors do not say what was wrong: a caller that gets one words the refusal
/// with `from_json` on the parsed tree.
pub struct ValueSeed<'a>(pub &'a DataType);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0 {
            DataType::Array(element) => deserializer.deserialize_any(ArrayVisitor(element)),
            DataType::Struct(_) | DataType::Map(_) => {
                let json = Json::deserialize(deserializer)?;
                Value::from_json(&json, self.0).map_err(D::Error::custom)
            }
            scalar => deserializer.deserialize_any(ScalarVisitor(scalar)),
        }
    }
}

/// An array, each element read by a `ValueSeed` of the element type (no `Json` tree), or null.
struct ArrayVisitor<'a>(&'a DataType);

impl<'de> Visitor<'de> for ArrayVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "array<{}>", self.0)
    }

    fn visit_unit<E: DeError>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(ValueSeed(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
}

struct ScalarVisitor<'a>(&'a DataType);

impl ScalarVisitor<'_> {
    fn mismatch<E: DeError>(&self) -> E {
        E::custom("not of the field's type")
    }

    fn float(&self, f: f64) -> Result<Value, ()> {
        match self.0 {
            DataType::Float32 => Ok(Value::Float32(f as f32)),
            DataType::Float64 => Ok(Value::Float64(f)),
            _ => Err(()),
        }
    }
}

impl Visitor<'_> for ScalarVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", describe(self.0))
    }

    fn visit_unit<E: DeError>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: DeError>(self, b: bool) -> Result<Value, E> {
        match self.0 {
            DataType::Bool => Ok(Value::Bool(b)),
            _ => Err(self.mismatch()),
        }
    }

    fn visit_i64<E: DeError>(self, i: i64) -> Result<Value, E> {
        match self.0 {
            DataType::Int64 => Ok(Value::Int64(i)),
            _ => self.float(i as f64).map_err(|()| self.mismatch()),
        }
    }

    fn visit_u64<E: DeError>(self, u: u64) -> Result<Value, E> {
        match self.0 {
            DataType::Int64 => i64::try_from(u)
                .map(Value::Int64)
                .map_err(|_| self.mismatch()),
            _ => self.float(u as f64).map_err(|()| self.mismatch()),
        }
    }

    fn visit_f64<E: DeError>(self, f: f64) -> Result<Value, E> {
        self.float(f).map_err(|()| self.mismatch())
    }

    fn visit_string<E: DeError>(self, s: String) -> Result<Value, E> {
        match self.0 {
            DataType::String => Ok(Value::String(s)),
            _ => self.visit_str(&s),
        }
    }

    fn visit_str<E: DeError>(self, s: &str) -> Result<Value, E> {
        let value = match self.0 {
            DataType::Int64 => s.trim().parse().map(Value::Int64).ok(),
            DataType::Float32 | DataType::Float64 => {
                parse_float(s).and_then(|f| self.float(f).ok())
            }
            DataType::String => Some(Value::String(s.to_string())),
            DataType::Timestamp => parse_timestamp(s).map(Value::Timestamp).ok(),
            _ => None,
        };
        value.ok_or_else(|| self.mismatch())
    }
}

fn float_from_json(json: &Json, rules: JsonRules) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) if rules.numeric_float_strings => parse_float(s),
        Json::String(s) => special_float(s),
        _ => None,
    }
}

fn parse_float(text: &str) -> Option<f64> {
    let text = text.trim();
    special_float(text).or_else(|| text.parse().ok())
}

/// The floats JSON numbers cannot carry, as Tecton's clients spell them.
fn special_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// How an error message names a type: the type itself plus, for int64 and floats, the accepted forms.
fn describe(data_type: &DataType) -> String {
    match data_type {
        DataType::Int64 => "int64 (an integer or a decimal string)".to_string(),
        DataType::Float32 | DataType::Float64 => {
            format!("{data_type} (a number, \"NaN\", \"Infinity\" or \"-Infinity\")")
        }
        DataType::Timestamp => "timestamp (an ISO 8601 string)".to_string(),
        other => other.to_string(),
    }
}

/// Serialises a value the way the Tecton Feature Service answers: int64 as a decimal string,
/// non-finite floats as `"NaN"`/`"Infinity"`/`"-Infinity"`, timestamps as RFC 3339 with `Z`,
/// structs as arrays in field order and maps as objects.
pub struct TectonJson<'a>(pub &'a Value);

impl Serialize for TectonJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            // As `collect_str` wrote it, without `core::fmt` (about 280 instructions a value).
            Value::Int64(i) => serializer.serialize_str(itoa::Buffer::new().format(*i)),
            Value::Float32(f) => serialize_float(f64::from(*f), serializer),
            Value::Float64(f) => serialize_float(*f, serializer),
            Value::String(s) => serializer.serialize_str(s),
            Value::Timestamp(micros) => serializer.serialize_str(&format_timestamp(*micros)),
            Value::Array(items) | Value::Struct(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&TectonJson(item))?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, &TectonJson(value))?;
                }
                map.end()
            }
        }
    }
}

fn serialize_float<S: Serializer>(f: f64, serializer: S) -> Result<S::Ok, S::Error> {
    if f.is_nan() {
        serializer.serialize_str("NaN")
    } else if f.is_infinite() {
        serializer.serialize_str(if f > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        serializer.serialize_f64(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(text: &str) -> DataType {
        DataType::parse(text).unwrap()
    }

    #[test]
    fn lenient_input_and_tecton_output() {
        let cases = [
            (json!("669"), "int64", json!("669")),
            (json!(669), "int64", json!("669")),
            (json!("NaN"), "float64", json!("NaN")),
            (json!(-1.5), "float64", json!(-1.5)),
            (
                json!({"lon": 2.0, "lat": 1.0}),
                "struct<lat:float64,lon:float64>",
                json!([1.0, 2.0]),
            ),
            (json!({"a": "1"}), "map<string,int64>", json!({"a": "1"})),
            (json!(["x", null]), "array<string>", json!(["x", null])),
            (
                json!("2024-05-01T12:00:00+00:00"),
                "timestamp",
                json!("2024-05-01T12:00:00Z"),
            ),
        ];
        for (input, type_text, output) in cases {
            let value = Value::from_json(&input, &t(type_text)).unwrap();
            assert_eq!(
                serde_json::to_value(TectonJson(&value)).unwrap(),
                output,
                "{type_text}"
            );
        }
    }

    #[test]
    fn mismatches_say_what_was_expected() {
        let err = Value::from_json(&json!("abc"), &t("int64")).unwrap_err();
        assert!(err.contains("expected int64"), "{err}");
        let err = Value::from_json(&json!([1, "x"]), &t("array<int64>")).unwrap_err();
        assert!(err.starts_with("[1]:"), "{err}");
        let err = Value::from_json(&json!({"zz": 1}), &t("struct<a:int64>")).unwrap_err();
        assert!(err.contains("unknown struct field `zz`"), "{err}");
        assert!(Value::from_json(&json!(12), &t("string")).is_err());
    }

    #[test]
    fn request_context_rules_refuse_numeric_float_strings_and_may_drop_extra_struct_fields() {
        let strict = JsonRules {
            numeric_float_strings: false,
            extra_struct_fields: true,
        };
        assert!(Value::from_json_with(&json!("500"), &t("float64"), strict).is_err());
        assert_eq!(
            Value::from_json(&json!("500"), &t("float64")),
            Ok(Value::Float64(500.0))
        );
        assert_eq!(
            Value::from_json_with(&json!(["-Infinity"]), &t("array<float64>"), strict),
            Ok(Value::Array(vec![Value::Float64(f64::NEG_INFINITY)]))
        );
        assert_eq!(
            Value::from_json_with(&json!({"a": 1, "zz": 2}), &t("struct<a:int64>"), strict),
            Ok(Value::Struct(vec![Value::Int64(1)]))
        );
    }

    #[test]
    fn the_value_seed_takes_what_from_json_takes() {
        let types = [
            "boolean",
            "int64",
            "float32",
            "float64",
            "string",
            "timestamp",
            "array<int64>",
            "array<string>",
            "array<array<int64>>",
            "array<struct<a:float64>>",
            "struct<a:float64>",
        ];
        let texts = [
            "true",
            "null",
            "0",
            "-3",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "-9223372036854775809",
            "1.5",
            "1e300",
            "\" 42 \"",
            "\"1.5\"",
            "\"NaN\"",
            "\"-Infinity\"",
            "\"x\"",
            "\"caf\\u00e9\"",
            "\"2024-05-01T12:00:00+02:00\"",
            "[1, null]",
            "[]",
            "[\"x\", null]",
            "[1, \"x\"]",
            "[[1, \"2\"], null, []]",
            "[[1], 2]",
            "[{\"a\": 1}, null]",
            "[{\"b\": 1}]",
            "{\"a\": 2}",
            "{\"b\": 2}",
        ];
        for type_text in types {
            let data_type = t(type_text);
            for text in texts {
                let mut deserializer = serde_json::Deserializer::from_str(text);
                let seeded = ValueSeed(&data_type).deserialize(&mut deserializer).ok();
                let json: Json = serde_json::from_str(text).unwrap();
                let tree = Value::from_json(&json, &data_type).ok();
                // Debug, so that NaN equals NaN.
                assert_eq!(
                    format!("{seeded:?}"),
                    format!("{tree:?}"),
                    "{text} as {type_text}"
                );
            }
        }
    }

    /// A composite cell reads as its JSON tree reads, refusals worded alike.
    #[test]
    fn csv_composite_cells_read_as_their_json_tree() {
        let tree = |text: &str, data_type: &DataType| -> Result<Value, String> {
            match serde_json::from_str::<Json>(text) {
                Ok(json) => Value::from_json(&json, data_type),
                Err(_) => Err(format!(
                    "expected {}, got `{}`",
                    describe(data_type),
                    echo(text)
                )),
            }
        };
        for type_text in [
            "array<string>",
            "array<int64>",
            "array<float64>",
            "array<array<int64>>",
            "struct<a:float64>",
            "map<string,int64>",
        ] {
            let data_type = t(type_text);
            for text in [
                "[\"grocery\",\"travel\"]",
                "[]",
                " [\"caf\u{e9}\", \"\\u00e9\", null] ",
                "[1, \"2\", null]",
                "[1.5, \"NaN\"]",
                "[[1], [], null]",
                "[1] x",
                "[1,]",
                "[\"a\"",
                "null",
                "{\"a\": 1}",
                "{\"a\": 1, \"a\": 2}",
                "\"x\"",
            ] {
                assert_eq!(
                    format!("{:?}", Value::from_text(text, &data_type)),
                    format!("{:?}", tree(text, &data_type)),
                    "{text} as {type_text}"
                );
            }
        }
    }

    #[test]
    fn csv_cells() {
        assert_eq!(Value::from_text("", &t("int64")), Ok(Value::Null));
        assert_eq!(
            Value::from_text("true", &t("boolean")),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            Value::from_text("[1,2]", &t("array<int64>")),
            Ok(Value::Array(vec![Value::Int64(1), Value::Int64(2)]))
        );
        for (text, flag) in [
            ("TRUE", true),
            ("True", true),
            ("1", true),
            ("False", false),
        ] {
            assert_eq!(Value::from_text(text, &t("boolean")), Ok(Value::Bool(flag)));
        }
        for text in ["yes", "t", "10", " true"] {
            assert!(Value::from_text(text, &t("boolean")).is_err(), "{text}");
        }
        assert!(Value::from_text("x1", &t("float64")).is_err());
    }

    proptest::proptest! {
        /// Plain digits read without `trim` and `parse`; every cell reads as they read it.
        #[test]
        fn int_cells_read_as_trim_then_parse(
            text in "[0-9]{1,20}|[ +-]?[0-9]{0,19} ?|.{0,6}",
        ) {
            proptest::prop_assert_eq!(int_cell(&text), text.trim().parse::<i64>().ok());
        }
    }
}
