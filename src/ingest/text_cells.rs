//! CSV cells as `BinaryRowsWriter::write_text_row` reads them for a binary rows body: by
//! `TextValue::read`, except an `array<string>` cell in the plain form a load file mostly holds
//! (`["grocery","travel"]`: strings without escapes), which is checked and encoded straight
//! from its text. Through `TextValue::read` such a cell became a `Value::Array` of `String`s
//! (a `ValueSeed` over `serde_json`, an allocation an item), encoded, then dropped: ~1.2k
//! instructions a demo row.

use super::binary_rows::EncodeCell;
use super::row::ColumnValue;
use crate::registry::types::DataType;
use crate::registry::value::TextValue;
use crate::store::row::{encode_string, encode_value, write_len, ARRAY};

/// One cell read for a binary rows record.
pub enum TextCell<'a> {
    Text(TextValue<'a>),
    Strings(PlainStrings<'a>),
}

impl<'a> TextCell<'a> {
    /// Reads `text` as `data_type`, as `TextValue::read` reads it (the same refusals).
    pub fn read(text: &'a str, data_type: &DataType) -> Result<TextCell<'a>, String> {
        if let DataType::Array(element) = data_type {
            if **element == DataType::String {
                if let Some(strings) = PlainStrings::read(text) {
                    return Ok(TextCell::Strings(strings));
                }
            }
        }
        TextValue::read(text, data_type).map(TextCell::Text)
    }
}

impl EncodeCell for TextCell<'_> {
    /// Appends the value's encoding, `encode_value`'s for the value `TextValue::read` reads.
    fn encode(self, out: &mut Vec<u8>) {
        match self {
            TextCell::Text(TextValue::String(text)) => encode_string(text, out),
            TextCell::Text(TextValue::Other(value)) => encode_value(&value, out),
            TextCell::Strings(strings) => strings.encode(out),
        }
    }
}

impl ColumnValue for TextCell<'_> {
    fn is_null(&self) -> bool {
        matches!(self, TextCell::Text(value) if value.is_null())
    }
}

/// A JSON array of strings none of which has an escape or a control character (which
/// `serde_json` would refuse or unescape), with JSON's white space anywhere between tokens: its
/// items are the text between their quotes.
pub struct PlainStrings<'a> {
    text: &'a str,
    items: usize,
}

impl<'a> PlainStrings<'a> {
    /// `text` if it is such an array; `None` leaves it to `TextValue::read`, to read or refuse.
    fn read(text: &'a str) -> Option<PlainStrings<'a>> {
        let mut items = 0;
        each_item(text, |_| items += 1)?;
        Some(PlainStrings { text, items })
    }

    /// Appends `encode_value`'s encoding of the array of the items as `Value::String`s.
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(ARRAY);
        write_len(self.items, out);
        each_item(self.text, |item| encode_string(item, out)).expect("read checked the array");
    }
}

/// Hands each item of `text`, a JSON array of plain strings, to `item`, or stops at the first
/// byte that is not of one (`None`; items before it have been handed on). One byte at a time,
/// each looked at once: the items are short, too short for `memchr`'s set-up to pay.
fn each_item<'a>(text: &'a str, mut item: impl FnMut(&'a str)) -> Option<()> {
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_space(bytes, at + 1);
    if bytes.get(at) == Some(&b']') {
        return (skip_space(bytes, at + 1) == bytes.len()).then_some(());
    }
    loop {
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let start = at + 1;
        let mut end = start;
        loop {
            match *bytes.get(end)? {
                b'"' => break,
                b'\\' | ..0x20 => return None,
                _ => end += 1,
            }
        }
        // Both ends are at ASCII quotes, so at char boundaries.
        item(&text[start..end]);
        at = skip_space(bytes, end + 1);
        match bytes.get(at) {
            Some(b',') => at = skip_space(bytes, at + 1),
            Some(b']') => return (skip_space(bytes, at + 1) == bytes.len()).then_some(()),
            _ => return None,
        }
    }
}

/// Where the first byte at or after `at` that is not JSON white space is.
fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings() -> DataType {
        DataType::Array(Box::new(DataType::String))
    }

    /// The bytes of `text` read as `TextValue::read` reads it, or its refusal.
    fn general(text: &str, data_type: &DataType) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        TextCell::Text(TextValue::read(text, data_type)?).encode(&mut out);
        Ok(out)
    }

    fn fast(text: &str, data_type: &DataType) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        TextCell::read(text, data_type)?.encode(&mut out);
        Ok(out)
    }

    #[test]
    fn plain_arrays_take_the_fast_path() {
        for text in [
            "[]",
            " [ ] ",
            r#"["grocery","travel"]"#,
            r#"[ "a" , "" ,"é ü"]"#,
            "[\"x\"]\n",
        ] {
            assert!(PlainStrings::read(text).is_some(), "{text}");
            assert_eq!(fast(text, &strings()), general(text, &strings()), "{text}");
        }
        for text in [
            "",
            "null",
            r#"["a",null]"#,
            r#"["a\"b"]"#,
            r#"["a",]"#,
            r#"["a"]x"#,
            "[\"a\tb\"]",
            r#"["a""b"]"#,
            r#"[1]"#,
            "[",
        ] {
            assert!(PlainStrings::read(text).is_none(), "{text}");
        }
        // Not an array of strings: the general path, whatever the text.
        let ints = DataType::Array(Box::new(DataType::Int64));
        assert!(matches!(
            TextCell::read(r#"["1"]"#, &ints),
            Ok(TextCell::Text(_))
        ));
        assert!(TextCell::read("", &strings()).unwrap().is_null());
    }

    proptest! {
        /// Any cell of an `array<string>` column encodes, or is refused in the same words, as
        /// `TextValue::read` reads it.
        #[test]
        fn array_cells_encode_as_the_general_path_encodes_them(
            text in r#"[ \[\]",a-cé\\\t\n]{0,16}|\[("[a-z \\"é]{0,4}",? ?){0,4}\]"#,
        ) {
            prop_assert_eq!(fast(&text, &strings()), general(&text, &strings()));
        }
    }
}
