//! The byte encoding of a row's feature values inside an arena.
//!
//! Self-describing (a tag byte per value, then its payload) so that a row can be decoded without
//! its schema, and compact: an int64 costs 9 bytes, a short string its length plus 2.

use std::ops::Range;

use crate::registry::value::Value;

// The tags, `write_len` and `Reader` are also the binary rows body's (`ingest::binary_rows`): it
// carries values in this encoding, checked and copied into rows as they are.
pub(crate) const NULL: u8 = 0;
pub(crate) const FALSE: u8 = 1;
pub(crate) const TRUE: u8 = 2;
pub(crate) const INT64: u8 = 3;
pub(crate) const FLOAT32: u8 = 4;
pub(crate) const FLOAT64: u8 = 5;
pub(crate) const STRING: u8 = 6;
pub(crate) const TIMESTAMP: u8 = 7;
pub(crate) const ARRAY: u8 = 8;
pub(crate) const STRUCT: u8 = 9;
pub(crate) const MAP: u8 = 10;

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

/// Appends the encoding of one value to `out` (a row's count written before).
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Int64(i) => {
            out.push(INT64);
            out.extend_from_slice(&i.to_le_bytes());
        }
        // Every NaN is stored as the one NaN a JSON `"NaN"` reads as, whatever its sign or
        // payload (a CSV's `-nan`, a Parquet file's, 0/0's): one form a value, which the binary
        // rows body then carries as it is.
        Value::Float32(f) => {
            out.push(FLOAT32);
            let f = if f.is_nan() { f64::NAN as f32 } else { *f };
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Float64(f) => {
            out.push(FLOAT64);
            let f = if f.is_nan() { f64::NAN } else { *f };
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => encode_string(s, out),
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

/// Appends the encoding of a string value to `out`: what `encode_value` writes for it, for a
/// caller holding a `&str`, not a `Value`.
pub fn encode_string(s: &str, out: &mut Vec<u8>) {
    out.push(STRING);
    write_str(s, out);
}

/// Decodes a row written by [`encode_row`].
pub fn decode_row(bytes: &[u8]) -> Result<Vec<Value>, CorruptRow> {
    let mut values = Vec::with_capacity(count_hint(bytes));
    split_row_with(bytes, |span| {
        values.push(EncodedValue::in_row(bytes, span).decode())
    })?;
    Ok(values)
}

/// Appends the byte span of each value of a row written by [`encode_row`] to `spans`, having
/// checked the whole row: the values can then be served from the row's bytes
/// ([`EncodedValue::in_row`]) without decoding them into [`Value`]s. The spans are moved by
/// `at`, where the row starts in a larger buffer (a read's): shifting them afterwards cost a
/// second pass over them (~590 instructions a seed batch).
pub fn split_row(bytes: &[u8], at: usize, spans: &mut Vec<Range<usize>>) -> Result<(), CorruptRow> {
    let start = spans.len();
    spans.reserve(count_hint(bytes));
    split_row_with(bytes, |span| spans.push(span.start + at..span.end + at))
        .inspect_err(|_| spans.truncate(start))
}

/// Appends each value of a row written by [`encode_row`] to `values`, having checked the whole
/// row (a corrupt one appends nothing): what a shard hands an aggregating view's tiles.
pub fn split_values<'a>(
    bytes: &'a [u8],
    values: &mut Vec<EncodedValue<'a>>,
) -> Result<(), CorruptRow> {
    let start = values.len();
    values.reserve(count_hint(bytes));
    split_row_with(bytes, |span| values.push(EncodedValue::in_row(bytes, span)))
        .inspect_err(|_| values.truncate(start))
}

/// How many values a row says it holds, bounded by its size (for reserving room up front).
fn count_hint(bytes: &[u8]) -> usize {
    let mut reader = Reader::new(bytes);
    reader.len().unwrap_or(0).min(bytes.len())
}

/// Checks a row and hands the span of each of its values to `each`.
fn split_row_with(bytes: &[u8], mut each: impl FnMut(Range<usize>)) -> Result<(), CorruptRow> {
    let mut reader = Reader::new(bytes);
    let n = reader.len()?;
    for _ in 0..n {
        let start = reader.pos;
        reader.skip_top()?;
        each(start..reader.pos);
    }
    if reader.pos != bytes.len() {
        return Err(CorruptRow(reader.pos));
    }
    Ok(())
}

/// One value of a checked row, as its encoded bytes: read without allocating.
#[derive(Debug, Clone, Copy)]
pub struct EncodedValue<'a> {
    bytes: &'a [u8],
}

/// An encoded value read without allocating: scalars by value, strings and containers borrowed
/// from the row's bytes.
#[derive(Debug)]
pub enum ValueRef<'a> {
    Scalar(Scalar),
    String(&'a str),
    Array(Items<'a>),
    Struct(Items<'a>),
    Map(Entries<'a>),
}

/// A null, bool, int64, float32, float64 or timestamp: a scalar [`Value`] with nothing to drop
/// (dropping a `Value` calls its drop glue even for a scalar, ~20 instructions, and an answer
/// writes a stored scalar for most of its features).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Timestamp(i64),
}

impl Scalar {
    /// `value` if it is a scalar; `None` for a string or a container.
    pub fn of(value: &Value) -> Option<Scalar> {
        Some(match value {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Int64(i) => Scalar::Int64(*i),
            Value::Float32(f) => Scalar::Float32(*f),
            Value::Float64(f) => Scalar::Float64(*f),
            Value::Timestamp(micros) => Scalar::Timestamp(*micros),
            Value::String(_) | Value::Array(_) | Value::Struct(_) | Value::Map(_) => return None,
        })
    }
}

impl From<Scalar> for Value {
    fn from(scalar: Scalar) -> Value {
        match scalar {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Int64(i) => Value::Int64(i),
            Scalar::Float32(f) => Value::Float32(f),
            Scalar::Float64(f) => Value::Float64(f),
            Scalar::Timestamp(micros) => Value::Timestamp(micros),
        }
    }
}

impl<'a> EncodedValue<'a> {
    /// The value at `span` of `row`, a span [`split_row`] gave for these bytes (reading one
    /// that is not panics).
    pub fn in_row(row: &'a [u8], span: Range<usize>) -> EncodedValue<'a> {
        EncodedValue { bytes: &row[span] }
    }

    /// A null, for an input a row does not hold.
    pub const NULL: EncodedValue<'static> = EncodedValue { bytes: &[NULL] };

    /// Null, read from the tag alone.
    pub fn is_null(self) -> bool {
        self.bytes[0] == NULL
    }

    /// The value, without allocating.
    pub fn read(self) -> ValueRef<'a> {
        match self.scalar() {
            Some(scalar) => ValueRef::Scalar(scalar),
            None => Reader::new(self.bytes).composite().expect(CHECKED),
        }
    }

    /// A scalar's value, read from the tag and the bytes after it; `None` for a string or a
    /// container. Inlined, for an answer's stored values (most are scalars): read through
    /// `read`, an out-of-line call whose `ValueRef` comes back through memory, and after
    /// `string_bytes`' test, a seed batch's answer cost ~2.3k instructions more (`#[inline]`
    /// alone left it a call, ~2.7k a seed batch with the reads).
    #[inline(always)]
    pub fn scalar(self) -> Option<Scalar> {
        Some(match self.bytes[0] {
            NULL => Scalar::Null,
            FALSE => Scalar::Bool(false),
            TRUE => Scalar::Bool(true),
            INT64 => Scalar::Int64(i64::from_le_bytes(self.fixed())),
            FLOAT32 => Scalar::Float32(f32::from_le_bytes(self.fixed())),
            FLOAT64 => Scalar::Float64(f64::from_le_bytes(self.fixed())),
            TIMESTAMP => Scalar::Timestamp(i64::from_le_bytes(self.fixed())),
            _ => return None,
        })
    }

    /// A string's bytes, UTF-8 as [`split_row`] checked them; `None` for any other type. For
    /// writing a served string out: [`EncodedValue::read`] checks them again for its `&str`
    /// (~100 instructions a short string).
    pub fn string_bytes(self) -> Option<&'a [u8]> {
        (self.bytes[0] == STRING).then(|| Reader::new(&self.bytes[1..]).bytes().expect(CHECKED))
    }

    /// An int64, float32 or float64 as an `f64`; `None` for any other type. Read from the tag
    /// and the bytes after it: no `Value` made and dropped.
    pub fn number(self) -> Option<f64> {
        match self.bytes[0] {
            INT64 => self.int64().map(|i| i as f64),
            FLOAT64 => Some(f64::from_le_bytes(self.fixed())),
            FLOAT32 => Some(f64::from(f32::from_le_bytes(self.fixed()))),
            _ => None,
        }
    }

    /// An int64's value; `None` for any other type.
    pub fn int64(self) -> Option<i64> {
        (self.bytes[0] == INT64).then(|| i64::from_le_bytes(self.fixed()))
    }

    /// The `N` bytes after the tag of a fixed-size scalar.
    fn fixed<const N: usize>(self) -> [u8; N] {
        self.bytes[1..1 + N].try_into().expect(CHECKED)
    }

    /// The xxh3-64 of `encode_row([value])`'s bytes, the hash a distinct-count sketch takes
    /// of a value: the row's count, then these bytes, copied to the stack when they fit (a heap
    /// buffer cost more than the hash). The bytes are `encode_value`'s (every stored row is
    /// written by this file, one encoding per value), so the hash is that of the value
    /// re-encoded, as registers were built from decoded values before.
    pub fn hash(self) -> u64 {
        // A one-value row: its count (LEB128 1), then the value.
        const COUNT: u8 = 1;
        let len = 1 + self.bytes.len();
        let mut stack = [0; 64];
        if let Some(row) = stack.get_mut(..len) {
            row[0] = COUNT;
            row[1..].copy_from_slice(self.bytes);
            return xxhash_rust::xxh3::xxh3_64(row);
        }
        let mut row = Vec::with_capacity(len);
        row.push(COUNT);
        row.extend_from_slice(self.bytes);
        xxhash_rust::xxh3::xxh3_64(&row)
    }

    /// The value as an owned [`Value`].
    pub fn decode(self) -> Value {
        match self.read() {
            ValueRef::Scalar(scalar) => scalar.into(),
            ValueRef::String(s) => Value::String(s.to_string()),
            ValueRef::Array(items) => Value::Array(items.map(EncodedValue::decode).collect()),
            ValueRef::Struct(items) => Value::Struct(items.map(EncodedValue::decode).collect()),
            ValueRef::Map(entries) => Value::Map(
                entries
                    .map(|(key, value)| (key.to_string(), value.decode()))
                    .collect(),
            ),
        }
    }
}

/// Why reading checked bytes cannot fail.
const CHECKED: &str = "an EncodedValue holds the bytes of a value split_row checked";

/// The items of an encoded array or struct, in order.
#[derive(Debug)]
pub struct Items<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for Items<'a> {
    type Item = EncodedValue<'a>;

    fn next(&mut self) -> Option<EncodedValue<'a>> {
        self.left = self.left.checked_sub(1)?;
        Some(self.reader.next_value())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Items<'_> {}

/// The entries of an encoded map, in order.
#[derive(Debug)]
pub struct Entries<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, EncodedValue<'a>);

    fn next(&mut self) -> Option<(&'a str, EncodedValue<'a>)> {
        self.left = self.left.checked_sub(1)?;
        let key = self.reader.str().expect(CHECKED);
        Some((key, self.reader.next_value()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Entries<'_> {}

pub(crate) fn write_len(mut n: usize, out: &mut Vec<u8>) {
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

/// `bytes.is_ascii()`, a string of at most 16 bytes (a row's usual key or word) tested as two
/// overlapping words: `is_ascii` aligns its word reads first, ~25 instructions a short string.
#[inline]
fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let half = |at: usize| {
        let mut half = [0; 4];
        half.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(half)
    };
    match bytes.len() {
        n @ 8..=16 => (word(0) | word(n - 8)) & HIGH == 0,
        n @ 4..8 => (half(0) | half(n - 4)) & 0x8080_8080 == 0,
        0..4 => bytes.iter().all(u8::is_ascii),
        _ => bytes.is_ascii(),
    }
}

/// Nesting deeper than this is refused on decode so that a corrupt input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

/// Why bytes did not read as this encoding, where: the binary rows body words its refusals
/// with it (`ingest::binary_rows`), the store keeps the place ([`CorruptRow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{fault}")]
pub(crate) struct ReadError {
    pub at: usize,
    pub fault: Fault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Fault {
    #[error("the row ends inside a value")]
    Ends,
    #[error("a length not in its shortest form")]
    LongForm,
    #[error("a length over 2^35")]
    TooLong,
    #[error("a string that is not UTF-8")]
    NotUtf8,
}

/// A string at `at` that is not UTF-8.
fn not_utf8(at: usize) -> ReadError {
    ReadError {
        at,
        fault: Fault::NotUtf8,
    }
}

impl From<ReadError> for CorruptRow {
    fn from(error: ReadError) -> CorruptRow {
        CorruptRow(error.at)
    }
}

/// Reads this encoding's parts in order, each checked: the store's rows, and the values of a
/// binary rows body, which must be in the one form the store writes (so that their bytes can be
/// copied into rows as they are). `write_len` is the only writer of lengths, so the one rule
/// for reading them (shortest LEB128, under 2^35: no row is that long) refuses nothing the
/// store wrote.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// How many bytes have been read.
    pub fn pos(&self) -> usize {
        self.pos
    }

    // `take`, `len` and `str` are inlined (as they were while the store alone called them):
    // every value of every served row is read through them.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.fault(Fault::Ends))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A length or count.
    #[inline]
    pub fn len(&mut self) -> Result<usize, ReadError> {
        let mut n: usize = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            n |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return Err(self.fault(Fault::LongForm));
                }
                return Ok(n);
            }
        }
        Err(self.fault(Fault::TooLong))
    }

    /// Moves past a length and that many bytes, and answers the bytes: a string's, unchecked.
    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], ReadError> {
        let n = self.len()?;
        self.take(n)
    }

    #[inline]
    pub fn str(&mut self) -> Result<&'a str, ReadError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|_| not_utf8(self.pos - bytes.len()))
    }

    /// Moves past a string, checked as `str` checks it, and answers its bytes (UTF-8). ASCII
    /// is tried first: `from_utf8` costs ~100 instructions a short string, `is_ascii` a few
    /// word tests, and a binary rows body's check needs no `&str`.
    #[inline]
    pub fn utf8(&mut self) -> Result<&'a [u8], ReadError> {
        let bytes = self.bytes()?;
        match is_ascii(bytes) || std::str::from_utf8(bytes).is_ok() {
            true => Ok(bytes),
            false => Err(not_utf8(self.pos - bytes.len())),
        }
    }

    fn fault(&self, fault: Fault) -> ReadError {
        ReadError {
            at: self.pos,
            fault,
        }
    }

    /// Checks the value here and moves past it; its strings' UTF-8 too if `CHECK_TEXT` (a
    /// value `split_row` checked already has only their lengths read).
    fn skip<const CHECK_TEXT: bool>(&mut self, depth: usize) -> Result<(), CorruptRow> {
        if depth > MAX_DEPTH {
            return Err(CorruptRow(self.pos));
        }
        let tag = self.take(1)?[0];
        match tag {
            NULL | FALSE | TRUE => {}
            INT64 | FLOAT64 | TIMESTAMP => {
                self.take(8)?;
            }
            FLOAT32 => {
                self.take(4)?;
            }
            STRING => self.skip_str::<CHECK_TEXT>()?,
            ARRAY | STRUCT => {
                for _ in 0..self.len()? {
                    self.skip::<CHECK_TEXT>(depth + 1)?;
                }
            }
            MAP => {
                for _ in 0..self.len()? {
                    self.skip_str::<CHECK_TEXT>()?;
                    self.skip::<CHECK_TEXT>(depth + 1)?;
                }
            }
            _ => return Err(CorruptRow(self.pos - 1)),
        }
        Ok(())
    }

    /// A row's value, checked as `skip::<true>` checks it: a scalar or a string (most of a
    /// served row's values) stepped over in the row's own loop, anything else (and any fault,
    /// so that its place is `skip`'s) through `skip`. With a call to `skip` a value,
    /// `split_row` cost a seed batch of ten random keys 13.6k instructions; 8.8k with this
    /// and `skip_str`'s ASCII test.
    #[inline]
    fn skip_top(&mut self) -> Result<(), CorruptRow> {
        let size = match self.bytes.get(self.pos) {
            Some(&(NULL | FALSE | TRUE)) => 1,
            Some(&(INT64 | FLOAT64 | TIMESTAMP)) => 9,
            Some(&FLOAT32) => 5,
            Some(&STRING) => {
                let start = self.pos;
                self.pos += 1;
                if self.utf8().is_ok() {
                    return Ok(());
                }
                self.pos = start;
                return self.skip::<true>(0);
            }
            _ => return self.skip::<true>(0),
        };
        match self.pos + size <= self.bytes.len() {
            true => {
                self.pos += size;
                Ok(())
            }
            false => self.skip::<true>(0),
        }
    }

    fn skip_str<const CHECK_TEXT: bool>(&mut self) -> Result<(), ReadError> {
        // `utf8` tries ASCII first: `str`'s `from_utf8` checked every string of every row
        // split (~100 instructions a short one).
        if CHECK_TEXT {
            self.utf8()?;
        } else {
            self.bytes()?;
        }
        Ok(())
    }

    /// The (checked) value here, as its bytes; moves past it. Its strings are not checked
    /// again: a served array of strings was checked three times (`split_row`, here, and
    /// reading the item), ~100 instructions a string each.
    fn next_value(&mut self) -> EncodedValue<'a> {
        let start = self.pos;
        self.skip::<false>(0).expect(CHECKED);
        EncodedValue {
            bytes: &self.bytes[start..self.pos],
        }
    }

    /// The string, array, struct or map here ([`EncodedValue::scalar`] reads the scalars).
    fn composite(&mut self) -> Result<ValueRef<'a>, CorruptRow> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            STRING => ValueRef::String(self.str()?),
            ARRAY | STRUCT | MAP => {
                let left = self.len()?;
                let reader = Reader::new(&self.bytes[self.pos..]);
                match tag {
                    ARRAY => ValueRef::Array(Items { reader, left }),
                    STRUCT => ValueRef::Struct(Items { reader, left }),
                    _ => ValueRef::Map(Entries { reader, left }),
                }
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

    #[test]
    fn every_nan_is_stored_as_the_one_nan_json_reads() {
        let one = |values: &[Value]| {
            let mut bytes = Vec::new();
            encode_row(values, &mut bytes);
            bytes
        };
        let canonical = one(&[Value::Float64(f64::NAN), Value::Float32(f64::NAN as f32)]);
        for (f64_bits, f32_bits) in [
            ((-f64::NAN).to_bits(), (-f32::NAN).to_bits()),
            (0x7ff0_0000_0000_0001, 0x7f80_0001),
            (0xfff8_0000_0000_0abc, 0xffc0_0abc),
        ] {
            let other = [
                Value::Float64(f64::from_bits(f64_bits)),
                Value::Float32(f32::from_bits(f32_bits)),
            ];
            assert_eq!(one(&other), canonical, "{f64_bits:x} {f32_bits:x}");
        }
    }

    proptest! {
        /// The short strings' word tests answer what `is_ascii` answers, whichever byte is
        /// past ASCII.
        #[test]
        fn short_strings_test_ascii_as_is_ascii(
            bytes in prop::collection::vec(prop_oneof![0u8..0x80, any::<u8>()], 0..40)
        ) {
            prop_assert_eq!(is_ascii(&bytes), bytes.is_ascii());
        }

        #[test]
        fn rows_round_trip(values in prop::collection::vec(arb_value(), 0..8)) {
            let mut bytes = Vec::new();
            encode_row(&values, &mut bytes);
            prop_assert_eq!(decode_row(&bytes).unwrap(), values);
        }

        #[test]
        fn split_values_read_as_decoded(values in prop::collection::vec(arb_value(), 0..8)) {
            let mut bytes = Vec::new();
            encode_row(&values, &mut bytes);
            // Spans are appended after what the list holds.
            let mut spans = Vec::new();
            spans.push(7..9);
            split_row(&bytes, 0, &mut spans).unwrap();
            prop_assert_eq!(spans.len(), values.len() + 1);
            for (span, value) in spans[1..].iter().zip(&values) {
                let encoded = EncodedValue::in_row(&bytes, span.clone());
                prop_assert_eq!(encoded.is_null(), value.is_null());
                prop_assert_eq!(&encoded.decode(), value);
                let (int, number) = match value {
                    Value::Int64(i) => (Some(*i), Some(*i as f64)),
                    Value::Float64(f) => (None, Some(*f)),
                    Value::Float32(f) => (None, Some(f64::from(*f))),
                    _ => (None, None),
                };
                prop_assert_eq!(encoded.int64(), int);
                prop_assert_eq!(encoded.number(), number);
            }
        }

        /// A row's loop steps over a value as `skip` does: to the same place, or refusing it
        /// at the same byte, whatever the bytes (valid values, cut short, or not UTF-8).
        #[test]
        fn a_rows_value_is_skipped_as_skip_skips_it(
            value in arb_value(),
            cut in any::<prop::sample::Index>(),
            flip in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
        ) {
            let mut bytes = Vec::new();
            encode_value(&value, &mut bytes);
            bytes.truncate(cut.index(bytes.len() + 1));
            if let (Some((at, byte)), false) = (flip, bytes.is_empty()) {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            let mut fast = Reader::new(&bytes);
            let mut slow = Reader::new(&bytes);
            let (fast_result, slow_result) = (fast.skip_top(), slow.skip::<true>(0));
            prop_assert_eq!(fast_result.map_err(|e| e.0), slow_result.map_err(|e| e.0));
            prop_assert_eq!(fast.pos, slow.pos);
        }

        #[test]
        fn a_scalar_reads_as_its_value(value in arb_value()) {
            let mut bytes = Vec::new();
            encode_value(&value, &mut bytes);
            let encoded = EncodedValue { bytes: &bytes };
            prop_assert_eq!(encoded.scalar(), Scalar::of(&value));
        }

        #[test]
        fn a_value_hashes_as_its_encoding_does(
            value in prop_oneof![
                arb_value(),
                // Around the 64 bytes hashed from the stack.
                ".{50,70}".prop_map(Value::String),
                "[a-z]{58,64}".prop_map(Value::String),
                ".{0,300}".prop_map(Value::String),
            ]
        ) {
            let mut bytes = Vec::new();
            encode_row(std::slice::from_ref(&value), &mut bytes);
            let mut values = Vec::new();
            split_values(&bytes, &mut values).unwrap();
            prop_assert_eq!(values.len(), 1);
            prop_assert_eq!(values[0].hash(), xxhash_rust::xxh3::xxh3_64(&bytes));
        }

        /// Lengths read back as `write_len` writes them, and in no other form: the binary rows
        /// body copies values as they are, so the store's one form is the only one let in.
        #[test]
        fn lengths_read_only_in_their_shortest_form(
            n in prop_oneof![0usize..300, 0usize..1 << 35],
            padding in 1usize..4,
        ) {
            let mut bytes = Vec::new();
            write_len(n, &mut bytes);
            prop_assert_eq!(Reader::new(&bytes).len(), Ok(n));
            // The same length with continuation bytes of zero after it.
            *bytes.last_mut().unwrap() |= 0x80;
            bytes.extend(std::iter::repeat_n(0x80, padding - 1));
            bytes.push(0);
            let fault = Reader::new(&bytes).len().unwrap_err().fault;
            let expected = match bytes.len() {
                ..=5 => Fault::LongForm,
                _ => Fault::TooLong,
            };
            prop_assert_eq!(fault, expected);
            // And a row holding a string of that length in that form is corrupt.
            let mut row = vec![1, STRING];
            row.extend_from_slice(&bytes);
            row.resize(row.len() + n.min(300), b'a');
            prop_assert!(decode_row(&row).is_err());
        }

        #[test]
        fn lengths_of_2_to_the_35_are_refused(n in (1usize << 35)..1 << 42) {
            let mut bytes = Vec::new();
            write_len(n, &mut bytes);
            prop_assert_eq!(Reader::new(&bytes).len().unwrap_err().fault, Fault::TooLong);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let decoded = decode_row(&bytes);
            let mut spans = Vec::new();
            let split = split_row(&bytes, 0, &mut spans);
            prop_assert_eq!(decoded.is_ok(), split.is_ok());
            let mut values = Vec::new();
            prop_assert_eq!(split_values(&bytes, &mut values).is_ok(), split.is_ok());
            prop_assert_eq!(values.len(), spans.len(), "a corrupt row leaves no values either");
            if let Ok(values) = decoded {
                for (span, value) in spans.into_iter().zip(values) {
                    prop_assert_eq!(EncodedValue::in_row(&bytes, span).decode(), value);
                }
            } else {
                prop_assert!(spans.is_empty(), "a corrupt row leaves no spans");
            }
        }
    }
}
