//! Feature data types (`int64`, `array<string>`, `struct<a:int64>`, ...) and their textual form.
//!
//! The textual form is what repository files use; `Display` gives it back unchanged, so an error
//! message can quote the type the user wrote.

use std::fmt;

/// How deep a type may nest `array<...>`, `map<...>` and `struct<...>`.
pub const MAX_TYPE_DEPTH: usize = 16;

/// The type of one feature, join key or request-context field.
#[derive(Debug, Clone, PartialEq)]
pub enum DataType {
    Bool,
    Int64,
    Float32,
    Float64,
    String,
    Timestamp,
    Array(Box<DataType>),
    Struct(Vec<StructField>),
    /// Keys are always strings, as in Tecton's `Map(String, V)`.
    Map(Box<DataType>),
}

/// One named field of a struct type.
#[derive(Debug, Clone, PartialEq)]
pub struct StructField {
    pub name: String,
    pub data_type: DataType,
}

impl DataType {
    /// Parses `boolean`, `int64`, `float32`, `float64`, `string`, `timestamp`, `array<T>`,
    /// `map<string,T>` and `struct<name:T,...>` (white space is allowed anywhere).
    pub fn parse(text: &str) -> Result<DataType, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        // The parser, and every reader and writer of values, recurses once a level: a type
        // nested a thousand deep overflowed a worker's stack at apply. No feature needs more
        // than a few levels.
        let depth = compact
            .chars()
            .scan(0usize, |open, c| {
                match c {
                    '<' => *open += 1,
                    '>' => *open = open.saturating_sub(1),
                    _ => {}
                }
                Some(*open)
            })
            .max()
            .unwrap_or(0);
        if depth > MAX_TYPE_DEPTH {
            return Err(format!(
                "the type nests `<...>` {depth} deep; at most {MAX_TYPE_DEPTH}"
            ));
        }
        let mut parser = TypeParser {
            text: &compact,
            pos: 0,
        };
        let data_type = parser.parse_type()?;
        if parser.pos != compact.len() {
            return Err(format!(
                "unexpected `{}` after the type",
                &compact[parser.pos..]
            ));
        }
        Ok(data_type)
    }

    /// Types allowed as join keys.
    pub fn is_join_key_type(&self) -> bool {
        matches!(self, DataType::String | DataType::Int64)
    }
}

struct TypeParser<'a> {
    text: &'a str,
    pos: usize,
}

impl TypeParser<'_> {
    fn parse_type(&mut self) -> Result<DataType, String> {
        let word = self.word();
        match word.to_ascii_lowercase().as_str() {
            "bool" | "boolean" => Ok(DataType::Bool),
            "int64" | "int32" => Ok(DataType::Int64),
            "float32" => Ok(DataType::Float32),
            "float64" => Ok(DataType::Float64),
            "string" => Ok(DataType::String),
            "timestamp" => Ok(DataType::Timestamp),
            "array" => {
                self.expect('<')?;
                let element = self.parse_type()?;
                self.expect('>')?;
                Ok(DataType::Array(Box::new(element)))
            }
            "map" => {
                self.expect('<')?;
                let key = self.parse_type()?;
                if key != DataType::String {
                    return Err("map keys must be `string`".to_string());
                }
                self.expect(',')?;
                let value = self.parse_type()?;
                self.expect('>')?;
                Ok(DataType::Map(Box::new(value)))
            }
            "struct" => {
                self.expect('<')?;
                let mut fields: Vec<StructField> = Vec::new();
                loop {
                    let name = self.word().to_string();
                    if name.is_empty() {
                        return Err("a struct field needs a name".to_string());
                    }
                    if fields.iter().any(|f| f.name == name) {
                        return Err(format!("struct field `{name}` appears twice"));
                    }
                    self.expect(':')?;
                    let data_type = self.parse_type()?;
                    fields.push(StructField { name, data_type });
                    if self.peek() == Some(',') {
                        self.pos += 1;
                        continue;
                    }
                    self.expect('>')?;
                    return Ok(DataType::Struct(fields));
                }
            }
            "" => Err("a type name is missing".to_string()),
            other => Err(format!(
                "unknown type `{other}` (expected boolean, int64, float32, float64, string, timestamp, array<T>, map<string,T> or struct<name:T,...>)"
            )),
        }
    }

    fn word(&mut self) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                self.pos += 1;
            } else {
                break;
            }
        }
        &self.text[start..self.pos]
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        if self.peek() == Some(wanted) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{wanted}` at position {}", self.pos))
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("boolean"),
            DataType::Int64 => f.write_str("int64"),
            DataType::Float32 => f.write_str("float32"),
            DataType::Float64 => f.write_str("float64"),
            DataType::String => f.write_str("string"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::Array(element) => write!(f, "array<{element}>"),
            DataType::Map(value) => write!(f, "map<string,{value}>"),
            DataType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{}", field.name, field.data_type)?;
                }
                f.write_str(">")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_nest_at_most_sixteen_deep() {
        let nested = |depth: usize| format!("{}int64{}", "array<".repeat(depth), ">".repeat(depth));
        assert!(DataType::parse(&nested(MAX_TYPE_DEPTH)).is_ok());
        let error = DataType::parse(&nested(1000)).unwrap_err();
        assert_eq!(error, "the type nests `<...>` 1000 deep; at most 16");
        let structs = format!("{}int64{}", "struct<a:".repeat(17), ">".repeat(17));
        assert!(DataType::parse(&structs).is_err());
    }

    #[test]
    fn nested_types_round_trip_through_text() {
        for text in [
            "boolean",
            "array<string>",
            "map<string,float64>",
            "struct<lat:float64,tags:array<string>>",
            "array<map<string,int64>>",
        ] {
            assert_eq!(DataType::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_types_name_the_problem() {
        assert!(DataType::parse("int")
            .unwrap_err()
            .contains("unknown type `int`"));
        assert!(DataType::parse("map<int64,string>")
            .unwrap_err()
            .contains("map keys"));
        assert!(DataType::parse("array<string")
            .unwrap_err()
            .contains("expected `>`"));
        assert!(DataType::parse("struct<a:int64,a:string>")
            .unwrap_err()
            .contains("twice"));
    }
}
