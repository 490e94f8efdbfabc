//! The bulk-rows endpoint's fast path: JSON Lines rows of one view read straight into store
//! writes. Each line's object is read by `ValueSeed`s driven by the view's columns (no JSON
//! tree, no map of the row's columns) and encoded at once. It takes only well-formed rows:
//! anything else (malformed JSON, a column the view lacks or given twice, a value not of its
//! column's type, a missing join key or timestamp) makes it answer `None`, and
//! `file::read_rows_body` reads the body again the old way, which words the refusal.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::row::{encode_write, view_columns};
use crate::registry::types::DataType;
use crate::registry::value::{Value, ValueSeed};
use crate::registry::FeatureView;
use crate::store::RowWrite;

/// Reads every line of `body` as a row of `view`; `None` if any line is not a well-formed row.
pub fn read_typed_rows(view: &FeatureView, body: &[u8]) -> Option<Vec<RowWrite>> {
    // A row's columns in slot order: join keys, the timestamp field, the row columns.
    let columns: Vec<(&str, &DataType)> = view_columns(view).collect();
    // A name in two roles would feed two slots from one value: left to the tree reader.
    if (1..columns.len()).any(|i| columns[..i].iter().any(|(name, _)| *name == columns[i].0)) {
        return None;
    }
    let keys = view.join_keys.len();
    let mut slots: Vec<Option<Value>> = vec![None; columns.len()];
    let mut writes = Vec::new();
    // Checked once for the whole body (the tree reader refuses invalid UTF-8 too), so that
    // serde_json need not check each string again.
    let text = std::str::from_utf8(body).ok()?;
    // The tree reader splits lines the same way (`BufRead::lines`; a `\r` before the newline is
    // JSON whitespace here) and skips blank ones.
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
        // Ends are at newlines (or the end), so always on character boundaries.
        let line = &text[start..end];
        start = end + 1;
        if line.bytes().all(|byte| byte.is_ascii_whitespace()) {
            continue;
        }
        let mut deserializer = serde_json::Deserializer::from_str(line);
        LineRow {
            columns: &columns,
            slots: &mut slots,
        }
        .deserialize(&mut deserializer)
        .ok()?;
        deserializer.end().ok()?;
        let (key, rest) = slots.split_at(keys);
        let (time, features) = rest.split_first().expect("the timestamp has a slot");
        let write = encode_write(
            view,
            key.iter().map(Option::as_ref),
            time.as_ref(),
            features.iter().map(Option::as_ref),
        );
        writes.push(write.ok()?);
        slots.fill(None);
    }
    Some(writes)
}

/// One line's object, each column read as its type into its slot.
struct LineRow<'a, 'b> {
    columns: &'a [(&'a str, &'a DataType)],
    slots: &'b mut [Option<Value>],
}

impl<'de> DeserializeSeed<'de> for LineRow<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// Declines what the typed reader does not take; never shown (the tree reader words it).
fn declined<E: de::Error>() -> E {
    E::custom("left to the JSON tree reader")
}

impl<'de> Visitor<'de> for LineRow<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a row object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // `quiver load` writes the columns in slot order: each key is tried against the slot
        // after the last one first, so it is usually matched by one comparison.
        let mut next = 0;
        while let Some(slot) = map.next_key_seed(ColumnSlot {
            columns: self.columns,
            next,
        })? {
            let value = map.next_value_seed(ValueSeed(self.columns[slot].1))?;
            if self.slots[slot].replace(value).is_some() {
                return Err(declined());
            }
            next = slot + 1;
        }
        Ok(())
    }
}

/// An object key as its column's slot (no allocation), `next` tried first; a name the view
/// lacks declines.
struct ColumnSlot<'a> {
    columns: &'a [(&'a str, &'a DataType)],
    next: usize,
}

impl<'de> DeserializeSeed<'de> for ColumnSlot<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for ColumnSlot<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a column of the feature view")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<usize, E> {
        match self.columns.get(self.next) {
            Some((column, _)) if *column == name => Ok(self.next),
            _ => self
                .columns
                .iter()
                .position(|(column, _)| *column == name)
                .ok_or_else(declined),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::dataset::demo_registry as demo;
    use crate::ingest::file::read_rows_body;
    use crate::ingest::row::{parse_json_row, RowJsonWriter};

    /// The tree reader's writes, line by line, as the endpoint read every body before.
    fn tree_rows(view: &FeatureView, body: &str) -> Result<Vec<RowWrite>, String> {
        body.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let json: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| e.to_string())?;
                let object = json.as_object().ok_or("not an object")?;
                parse_json_row(view, object).map(|row| row.to_write(view))
            })
            .collect()
    }

    #[test]
    fn well_formed_rows_are_read_as_the_tree_reader_reads_them() {
        let registry = demo();
        let view = registry.view_by_name("prod", "user_profile").unwrap();
        let demo_rows = std::fs::read_to_string("features/demo/user_profile.jsonl").unwrap();
        let bodies = [
            demo_rows.as_str(),
            // As `quiver load` writes them: int64 as strings, columns in the view's order.
            "{\"user_id\":\"u1\",\"timestamp\":\"2026-01-15T00:00:00Z\",\"credit_score\":\"690\",\
             \"account_age_days\":\"30\",\"is_verified\":true,\"home_country\":\"DE\",\
             \"preferred_categories\":[\"books\"],\"signup_time\":\"2026-05-02T10:00:00Z\"}\n",
            // Columns left out or null, another order, CRLF, blank lines, no final newline.
            "\r\n{\"timestamp\": \"2026-01-15T00:00:00.5+01:00\", \"user_id\": \"u2\", \
             \"credit_score\": null, \"preferred_categories\": [null, \"x\"]}\r\n  \n\
             {\"user_id\": \"u3\", \"timestamp\": \"2026-01-15 00:00:00Z\", \"credit_score\": -7, \
             \"is_verified\": null, \"preferred_categories\": null}",
            "",
            "\n\n",
        ];
        for body in bodies {
            let tree = format!("{:?}", tree_rows(view, body).unwrap());
            let typed = read_typed_rows(view, body.as_bytes()).expect(body);
            assert_eq!(format!("{typed:?}"), tree, "{body}");
            let read = read_rows_body(view, body.as_bytes()).unwrap();
            assert_eq!(format!("{read:?}"), tree);
        }
    }

    #[test]
    fn what_it_declines_the_tree_reader_words() {
        let registry = demo();
        let view = registry.view_by_name("prod", "user_profile").unwrap();
        let good = "{\"user_id\": \"u1\", \"timestamp\": \"2026-01-15T00:00:00Z\"}";
        let cases = [
            ("not json", "line 2: not valid JSON"),
            ("[1, 2]", "line 2: expected a JSON object"),
            ("\"text\"", "line 2: expected a JSON object"),
            (
                "{\"user_id\": \"u2\", \"timestamp\": \"2026-01-15T00:00:00Z\", \"nope\": 1}",
                "line 2: `nope` is not a column of feature view `user_profile`",
            ),
            (
                "{\"user_id\": \"u2\", \"timestamp\": \"2026-01-15T00:00:00Z\", \"credit_score\": \"high\"}",
                "line 2: column `credit_score`: expected int64",
            ),
            (
                "{\"user_id\": 5, \"timestamp\": \"2026-01-15T00:00:00Z\"}",
                "line 2: join key `user_id`: expected string",
            ),
            (
                "{\"user_id\": null, \"timestamp\": \"2026-01-15T00:00:00Z\"}",
                "line 2: join key `user_id` is missing",
            ),
            (
                "{\"timestamp\": \"2026-01-15T00:00:00Z\"}",
                "line 2: join key `user_id` is missing",
            ),
            (
                "{\"user_id\": \"u2\"}",
                "line 2: timestamp field `timestamp` is missing",
            ),
            (
                "{\"user_id\": \"u2\", \"timestamp\": \"yesterday\"}",
                "line 2: timestamp field `timestamp`: expected an ISO 8601 timestamp",
            ),
            (
                "{\"user_id\": \"u2\", \"timestamp\": \"2026-01-15T00:00:00Z\"} {\"user_id\": \"u3\"}",
                "line 2: not valid JSON: trailing characters",
            ),
            ("{\"user_id\": \"u2\",", "line 2: not valid JSON"),
        ];
        for (line, message) in cases {
            let body = format!("{good}\n{line}\n");
            assert!(read_typed_rows(view, body.as_bytes()).is_none(), "{line}");
            let refusal = read_rows_body(view, body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(refusal.starts_with(message), "{line}: {refusal}");
        }
        // Declined but well-formed for the tree reader: a column given twice (the last counts).
        let twice =
            "{\"user_id\": \"u1\", \"user_id\": \"u2\", \"timestamp\": \"2026-01-15T00:00:00Z\"}";
        assert!(read_typed_rows(view, twice.as_bytes()).is_none());
        assert_eq!(
            format!("{:?}", read_rows_body(view, twice.as_bytes()).unwrap()),
            format!("{:?}", tree_rows(view, twice).unwrap())
        );
        // Invalid UTF-8 inside a string, and an object over two lines.
        let bad_utf8 = b"{\"user_id\": \"u\xff\", \"timestamp\": \"2026-01-15T00:00:00Z\"}\n";
        assert!(read_typed_rows(view, bad_utf8).is_none());
        assert!(read_rows_body(view, bad_utf8).is_err());
        let split = "{\"user_id\": \"u1\",\n\"timestamp\": \"2026-01-15T00:00:00Z\"}\n";
        assert!(read_typed_rows(view, split.as_bytes()).is_none());
        assert!(read_rows_body(view, split.as_bytes()).is_err());
    }

    #[test]
    fn rows_as_quiver_load_writes_them_read_back_to_the_same_writes() {
        let registry = demo();
        let view = registry.view_by_name("prod", "user_profile").unwrap();
        let demo_rows = std::fs::read_to_string("features/demo/user_profile.jsonl").unwrap();
        let writer = RowJsonWriter::new(view);
        let (mut body, mut writes) = (Vec::new(), Vec::new());
        for line in demo_rows.lines() {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            let row = parse_json_row(view, json.as_object().unwrap()).unwrap();
            writer.write(&row, &mut body);
            body.push(b'\n');
            writes.push(row.to_write(view));
        }
        let read = read_typed_rows(view, &body).expect("the writer's rows are well-formed");
        assert_eq!(format!("{read:?}"), format!("{writes:?}"));
    }
}
