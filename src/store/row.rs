//! The byte encoding of a row's feature values inside an arena.
//!
//! Self-describing (a tag byte per value, then its payload) so that a row can be decoded without
//! its schema, and compact: an int64 costs 9 bytes, a short string its length plus 2.

use crate::registry::value::Value;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT64: u8 = 3;
const FLOAT32: u8 = 4;
const FLOAT64: u8 = 5;
const STRING: u8 = 6;
const TIMESTAMP: u8 = 7;
const ARRAY: u8 = 8;
const STRUCT: u8 = 9;
const MAP: u8 = 10;

/// A row's bytes did not decode: the arena or a snapshot holds something this code did not write.
#[derive(Debug, thiserror::Error)]
#[error("corrupt row encoding at byte {0}")]
pub struct CorruptRow(pub usize);

/// Appends the encoding of `values` to `out`.
pub fn encode_row<'a, I>(values: I, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = &'a Value>,
    I::IntoIter: ExactSizeIterator,
{
    let values = values.into_iter();
    // Room for scalars (a tag and 8 bytes each) up front: one allocation for most rows.
    out.reserve(1 + 9 * values.len());
    write_len(values.len(), out);
    for value in values {
        encode_value(value, out);
    }
}

fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Int64(i) => {
            out.push(INT64);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float32(f) => {
            out.push(FLOAT32);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Float64(f) => {
            out.push(FLOAT64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => {
            out.push(STRING);
            write_str(s, out);
        }
        Value::Timestamp(micros) => {
            out.push(TIMESTAMP);
            out.extend_from_slice(&micros.to_le_bytes());
        }
        Value::Array(items) | Value::Struct(items) => {
            out.push(if matches!(value, Value::Array(_)) {
                ARRAY
            } else {
                STRUCT
            });
            write_len(items.len(), out);
            for item in items {
                encode_value(item, out);
            }
        }
        Value::Map(entries) => {
            out.push(MAP);
            write_len(entries.len(), out);
            for (key, item) in entries {
                write_str(key, out);
                encode_value(item, out);
            }
        }
    }
}

/// Decodes a row written by [`encode_row`].
pub fn decode_row(bytes: &[u8]) -> Result<Vec<Value>, CorruptRow> {
    let mut reader = Reader { bytes, pos: 0 };
    let n = reader.len()?;
    let mut values = Vec::with_capacity(n.min(bytes.len()));
    for _ in 0..n {
        values.push(reader.value(0)?);
    }
    if reader.pos != bytes.len() {
        return Err(CorruptRow(reader.pos));
    }
    Ok(values)
}

fn write_len(mut n: usize, out: &mut Vec<u8>) {
    // LEB128: one byte for lengths under 128.
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    write_len(s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

/// Nesting deeper than this is refused on decode so that a corrupt input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CorruptRow> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(CorruptRow(self.pos))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], CorruptRow> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len(&mut self) -> Result<usize, CorruptRow> {
        let mut n: usize = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            n |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(CorruptRow(self.pos))
    }

    fn string(&mut self) -> Result<String, CorruptRow> {
        let n = self.len()?;
        let start = self.pos;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| CorruptRow(start))
    }

    fn value(&mut self, depth: usize) -> Result<Value, CorruptRow> {
        if depth > MAX_DEPTH {
            return Err(CorruptRow(self.pos));
        }
        let tag = self.take(1)?[0];
        Ok(match tag {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT64 => Value::Int64(i64::from_le_bytes(self.fixed()?)),
            FLOAT32 => Value::Float32(f32::from_le_bytes(self.fixed()?)),
            FLOAT64 => Value::Float64(f64::from_le_bytes(self.fixed()?)),
            STRING => Value::String(self.string()?),
            TIMESTAMP => Value::Timestamp(i64::from_le_bytes(self.fixed()?)),
            ARRAY | STRUCT => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(self.bytes.len() - self.pos));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                if tag == ARRAY {
                    Value::Array(items)
                } else {
                    Value::Struct(items)
                }
            }
            MAP => {
                let n = self.len()?;
                let mut entries = Vec::with_capacity(n.min(self.bytes.len() - self.pos));
                for _ in 0..n {
                    let key = self.string()?;
                    entries.push((key, self.value(depth + 1)?));
                }
                Value::Map(entries)
            }
            _ => return Err(CorruptRow(self.pos - 1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int64),
            any::<i64>().prop_map(Value::Timestamp),
            (-1e9f64..1e9).prop_map(Value::Float64),
            (-1e9f32..1e9).prop_map(Value::Float32),
            ".{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Struct),
                prop::collection::vec((".{0,5}", inner), 0..5).prop_map(Value::Map),
            ]
        })
    }

    #[test]
    fn a_demo_profile_row_takes_52_bytes() {
        // The figure ARCHITECTURE.md quotes for the cost of a row.
        let strings = |items: &[&str]| {
            Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
        };
        let row = [
            Value::Int64(712),
            Value::Int64(1460),
            Value::Bool(true),
            Value::String("US".into()),
            strings(&["grocery", "travel"]),
            Value::Timestamp(1_642_239_000_000_000),
        ];
        let mut bytes = Vec::new();
        encode_row(&row, &mut bytes);
        assert_eq!(bytes.len(), 52);
    }

    proptest! {
        #[test]
        fn rows_round_trip(values in prop::collection::vec(arb_value(), 0..8)) {
            let mut bytes = Vec::new();
            encode_row(&values, &mut bytes);
            prop_assert_eq!(decode_row(&bytes).unwrap(), values);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_row(&bytes);
        }
    }
}
