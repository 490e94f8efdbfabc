//! The Feature Service request body read by hand where it has the common shape: the
//! `{"params": {...}}` envelope, the known fields by either name, strings without escapes,
//! numbers, booleans and nulls, join-key and request-context maps, a batch's `requestData`.
//! Anything else (an escape, an unknown or repeated field, a nested value in a map, any error)
//! is declined and serde reads the body, so every refusal stays serde's. Through serde's
//! visitors a request's string cost ~130 instructions; here it is one scan.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::{Map, Number, Value as Json};

use super::feature_service::{BatchRow, GetFeaturesParams, MetadataOptions, Text};
use crate::serving::RequestValue;

/// `body`'s `params` when it has the common shape, as serde reads them (the property test
/// below holds the two readings to each other); `None` when serde must read it.
pub fn common_params(body: &[u8]) -> Option<GetFeaturesParams<'_>> {
    let mut reader = Reader {
        text: std::str::from_utf8(body).ok()?,
        at: 0,
    };
    let mut params = None;
    let mut seen = Seen::default();
    reader.object(|reader, name| match name {
        "params" => {
            seen.first(0)?;
            params = Some(reader.params()?);
            Some(())
        }
        _ => None,
    })?;
    reader.end()?;
    params
}

/// Which of a struct's fields were read: serde refuses a field given twice (under either of
/// its names), so a second one is declined.
#[derive(Default)]
struct Seen(u16);

impl Seen {
    fn first(&mut self, field: u8) -> Option<()> {
        let bit = 1 << field;
        (self.0 & bit == 0).then(|| self.0 |= bit)
    }
}

/// The params' list of every object's fields.
type Fields<'a> = Vec<(Cow<'a, str>, RequestValue<'a>)>;

/// A position in a body known to be UTF-8.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    /// The next byte after JSON's whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        // A local position: stepped through `self`, the loop stored it on every byte.
        let bytes = self.text.as_bytes();
        let mut at = self.at;
        while let Some(&byte) = bytes.get(at) {
            if !matches!(byte, b' ' | b'\n' | b'\t' | b'\r') {
                self.at = at;
                return Some(byte);
            }
            at += 1;
        }
        self.at = at;
        None
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.at += 1)
    }

    /// Only whitespace is left (serde_json's `end`).
    fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.text.as_bytes().get(self.at..end)? == word).then(|| self.at = end)
    }

    /// An object, each field handed to `field` by name with the reader at its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let name = self.string()?;
            self.eat(b':')?;
            field(self, name)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array, each item read by `item`.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string with no escape (serde would unescape it into a copy) and no control character
    /// (serde refuses one), borrowed from the body.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let len = string_stop(&self.text.as_bytes()[start..])?;
        // Only the closing quote ends a string read here.
        if self.text.as_bytes()[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    /// `null` as `None`, any other value as `read` reads it (serde's `Option`).
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        read(self).map(Some)
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => None,
        }
    }

    fn text(&mut self) -> Option<Text<'a>> {
        self.string().map(|text| Text(Cow::Borrowed(text)))
    }

    fn params(&mut self) -> Option<GetFeaturesParams<'a>> {
        let mut params = GetFeaturesParams {
            // Room for every field at once: a field takes some 30 bytes of a body or more (its
            // name, value, quotes and separators), and growing from empty cost a reallocation
            // and a copy each time (4 allocations for a batch of 10 rows of 3 fields).
            fields: Vec::with_capacity(self.text.len() / 32),
            ..GetFeaturesParams::default()
        };
        let mut seen = Seen::default();
        self.object(|reader, name| {
            let p = &mut params;
            match name {
                "featureServiceId" | "feature_service_id" => {
                    seen.first(0)?;
                    p.feature_service_id = reader.nullable(Reader::text)?;
                }
                "featureServiceName" | "feature_service_name" => {
                    seen.first(1)?;
                    p.feature_service_name = reader.nullable(Reader::text)?;
                }
                "workspaceName" | "workspace_name" => {
                    seen.first(2)?;
                    p.workspace_name = reader.nullable(Reader::text)?;
                }
                "joinKeyMap" | "join_key_map" => {
                    seen.first(3)?;
                    p.join_key_map = reader.nullable(|r| r.fields(&mut p.fields))?;
                }
                "requestContextMap" | "request_context_map" => {
                    seen.first(4)?;
                    p.request_context_map = reader.nullable(|r| r.fields(&mut p.fields))?;
                }
                "metadataOptions" | "metadata_options" => {
                    seen.first(5)?;
                    p.metadata_options = reader.nullable(Reader::metadata_options)?;
                }
                "requestOptions" | "request_options" => {
                    seen.first(6)?;
                    p.request_options = reader.nullable(Reader::request_options)?;
                }
                "allowPartialResults" | "allow_partial_results" => {
                    seen.first(7)?;
                    p.allow_partial_results = reader.nullable(Reader::boolean)?;
                }
                "requestData" | "request_data" => {
                    seen.first(8)?;
                    p.request_data = reader.nullable(|r| r.batch_rows(&mut p.fields))?;
                }
                _ => return None,
            }
            Some(())
        })?;
        Some(params)
    }

    fn batch_rows(&mut self, fields: &mut Fields<'a>) -> Option<Vec<Option<BatchRow>>> {
        let mut rows = Vec::new();
        self.array(|reader| {
            rows.push(reader.nullable(|r| r.batch_row(fields))?);
            Some(())
        })?;
        Some(rows)
    }

    fn batch_row(&mut self, fields: &mut Fields<'a>) -> Option<BatchRow> {
        let mut row = BatchRow::default();
        let mut seen = Seen::default();
        self.object(|reader, name| {
            let (field, slot) = match name {
                "joinKeyMap" | "join_key_map" => (0, &mut row.join_key_map),
                "requestContextMap" | "request_context_map" => (1, &mut row.request_context_map),
                _ => return None,
            };
            seen.first(field)?;
            *slot = reader.nullable(|r| r.fields(fields))?;
            Some(())
        })?;
        Some(row)
    }

    /// A join-key or request-context map, its fields pushed to `fields` (every field kept in
    /// order, a repeated name too): the range they take there.
    fn fields(&mut self, fields: &mut Fields<'a>) -> Option<Range<usize>> {
        let start = fields.len();
        self.object(|reader, name| {
            let value = match reader.peek()? {
                b'"' => RequestValue::String(Cow::Borrowed(reader.string()?)),
                _ => RequestValue::Json(reader.scalar()?),
            };
            fields.push((Cow::Borrowed(name), value));
            Some(())
        })?;
        Some(start..fields.len())
    }

    fn metadata_options(&mut self) -> Option<MetadataOptions> {
        let mut options = MetadataOptions::default();
        let mut seen = Seen::default();
        self.object(|reader, name| {
            let o = &mut options;
            let (field, slot) = match name {
                "includeNames" | "include_names" => (0, &mut o.include_names),
                "includeEffectiveTimes" | "include_effective_times" => {
                    (1, &mut o.include_effective_times)
                }
                "includeDataTypes" | "include_data_types" => (2, &mut o.include_data_types),
                "includeSloInfo" | "include_slo_info" => (3, &mut o.include_slo_info),
                "includeServingStatus" | "include_serving_status" => {
                    (4, &mut o.include_serving_status)
                }
                "includeFeatureDescriptions" | "include_feature_descriptions" => {
                    (5, &mut o.include_feature_descriptions)
                }
                "includeFeatureTags" | "include_feature_tags" => (6, &mut o.include_feature_tags),
                _ => return None,
            };
            seen.first(field)?;
            *slot = reader.nullable(Reader::boolean)?;
            Some(())
        })?;
        Some(options)
    }

    /// `requestOptions` of scalars, as serde_json builds its map (a repeated name keeps its
    /// place and takes the last value).
    fn request_options(&mut self) -> Option<Map<String, Json>> {
        let mut options = Map::new();
        self.object(|reader, name| {
            let value = match reader.peek()? {
                b'"' => Json::String(reader.string()?.to_owned()),
                _ => reader.scalar()?,
            };
            options.insert(name.to_owned(), value);
            Some(())
        })?;
        Some(options)
    }

    /// A number, boolean or null as serde_json reads it into a `Value`.
    fn scalar(&mut self) -> Option<Json> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| Json::Null),
            b't' | b'f' => self.boolean().map(Json::Bool),
            b'-' | b'0'..=b'9' => self.number().map(Json::Number),
            _ => None,
        }
    }

    /// A number as serde_json reads one: an integer as a u64, or an i64 when negative;
    /// a fraction, an exponent, `-0` or an integer past those as the nearest f64 (serde_json's
    /// `float_roundtrip`, as the standard library's parse), refused out of f64's range.
    fn number(&mut self) -> Option<Number> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut at = start;
        let negative = bytes[start] == b'-';
        if negative {
            at += 1;
        }
        let integer_start = at;
        // The digits' value while it fits in a u64, the fraction's digits included.
        let mut significand: Option<u64> = Some(0);
        while let Some(&digit @ b'0'..=b'9') = bytes.get(at) {
            significand =
                significand.and_then(|s| s.checked_mul(10)?.checked_add(u64::from(digit - b'0')));
            at += 1;
        }
        let integer_digits = at - integer_start;
        // JSON: at least one digit, and no leading zero before another.
        if integer_digits == 0 || (integer_digits > 1 && bytes[integer_start] == b'0') {
            return None;
        }
        let mut fraction_digits = None;
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            let fraction_start = at;
            while let Some(&digit @ b'0'..=b'9') = bytes.get(at) {
                significand = significand
                    .and_then(|s| s.checked_mul(10)?.checked_add(u64::from(digit - b'0')));
                at += 1;
            }
            if at == fraction_start {
                return None;
            }
            fraction_digits = Some(at - fraction_start);
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let exponent_start = at;
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == exponent_start {
                return None;
            }
            exponent = true;
        }
        self.at = at;
        let float = match (significand, fraction_digits, exponent) {
            (Some(s), None, false) if !negative => return Some(Number::from(s)),
            (Some(s), None, false) => match (s as i64).wrapping_neg() {
                negated if negated < 0 => return Some(Number::from(negated)),
                // `-0`, or past i64: serde_json reads the float.
                _ => -(s as f64),
            },
            // A significand exact in an f64 over an exact power of ten: one correctly rounded
            // division, the nearest float, without the general parse.
            (Some(s), Some(digits), false) if s < 1 << 53 && digits < EXACT_POWERS_OF_TEN.len() => {
                let magnitude = s as f64 / EXACT_POWERS_OF_TEN[digits];
                if negative {
                    -magnitude
                } else {
                    magnitude
                }
            }
            _ => self.text[start..at].parse::<f64>().ok()?,
        };
        // Not finite: past f64's range, which serde_json refuses.
        Number::from_f64(float)
    }
}

/// The bytes of `word` (eight, little-endian) that stop a JSON string's plain text, `"`, `\`
/// or a control character: each one's high bit set, exact for the lowest (a byte's bit is set
/// where it is below `n`, x - n*ONES & !x, and a borrow only runs up from such a byte), so
/// zero exactly when none is there. Also how an answer finds a stored string with nothing to
/// escape (`feature_service::push_string`).
#[inline]
pub(super) fn json_stops(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Bytes of 0x80 and over are never below.
    let below = |word: u64, n: u64| word.wrapping_sub(n * ONES) & !word & HIGHS;
    below(word ^ (u64::from(b'"') * ONES), 1)
        | below(word ^ (u64::from(b'\\') * ONES), 1)
        | below(word, 0x20)
}

/// Where a string's text stops: the index of the first `"`, `\` or control character in
/// `bytes`, eight bytes a step (a byte at a time cost ~15 instructions a byte).
fn string_stop(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let stops = json_stops(u64::from_le_bytes(
            chunk.try_into().expect("chunks of eight"),
        ));
        if stops != 0 {
            return Some(offset + stops.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    let rest = chunks.remainder();
    let at = rest
        .iter()
        .position(|&byte| matches!(byte, b'"' | b'\\' | 0..=0x1f))?;
    Some(offset + at)
}

/// 10^0 ..= 10^22, each exact in an f64.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::parse_json;
    use crate::http::wire::feature_service::Envelope;
    use proptest::prelude::*;

    /// serde's reading of `body`'s params, `None` for a refusal (or `"params": null`).
    fn serde_params(body: &[u8]) -> Option<GetFeaturesParams<'_>> {
        let request = actix_web::test::TestRequest::default().to_http_request();
        parse_json::<Envelope<Option<GetFeaturesParams>>>(&request, body)
            .ok()?
            .params
    }

    /// Both readings of `body`, as text: equal when they read the same params. Each object is
    /// written as its fields, not as its place in the params' list (the two readers fill it in
    /// different orders).
    fn both(body: &[u8]) -> (Option<String>, Option<String>) {
        let text = |params: Option<GetFeaturesParams>| {
            params.map(|p| {
                let object = |at: &Option<Range<usize>>| at.clone().map(|at| &p.fields[at]);
                let rows = p.request_data.as_ref().map(|rows| {
                    rows.iter()
                        .map(|row| {
                            row.as_ref().map(|row| {
                                (object(&row.join_key_map), object(&row.request_context_map))
                            })
                        })
                        .collect::<Vec<_>>()
                });
                format!(
                    "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {rows:?}",
                    p.feature_service_id,
                    p.feature_service_name,
                    p.workspace_name,
                    object(&p.join_key_map),
                    object(&p.request_context_map),
                    p.metadata_options,
                    p.request_options,
                    p.allow_partial_results,
                )
            })
        };
        (text(common_params(body)), text(serde_params(body)))
    }

    #[test]
    fn the_common_shapes_are_read_by_hand_as_serde_reads_them() {
        let bodies = [
            // The benchmark's seed and plain requests, single and batch (Python's separators).
            r#"{"params": {"workspaceName": "prod", "featureServiceName": "fraud_detection_feature_service", "joinKeyMap": {"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"}, "requestContextMap": {"amount": 100.5}}}"#,
            r#"{"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service", "requestData": [{"joinKeyMap": {"user_id": "user_1001", "merchant": "m"}, "requestContextMap": {}}, null, {}]}}"#,
            // tecton-client's shape: metadata and request options, snake_case aliases.
            r#"{"params":{"feature_service_name":"s","workspace_name":"w","join_key_map":{"user_id":"u","n":-12,"z":0,"big":18446744073709551615},"request_context_map":{"amount":-0,"x":1e3,"y":-2.5e-3,"t":true,"f":false,"n":null},"metadataOptions":{"includeNames":true,"include_slo_info":null},"requestOptions":{"latencyBudgetMs":50,"aggregationLeadingEdge":"AGGREGATION_MODE_LATEST_EVENT_TIME","a":1,"a":2},"allowPartialResults":false}}"#,
            // A repeated map field is kept (the last one wins when read); nulls are unset.
            "\r\n\t{ \"params\" : { \"joinKeyMap\" : { \"k\" : \"1\" , \"k\" : \"2\" } , \"featureServiceId\" : null , \"requestData\" : null } } \n",
        ];
        for body in bodies {
            let (fast, serde) = both(body.as_bytes());
            assert!(fast.is_some(), "declined: {body}");
            assert_eq!(fast, serde, "{body}");
        }
        let declined = [
            r#"{"params": {"joinKeyMap": {"user_id": "a\"b"}}}"#,
            r#"{"params": {"extra": 1}}"#,
            r#"{"params": {"workspaceName": "a", "workspace_name": "b"}}"#,
            r#"{"params": {"joinKeyMap": {"ids": [1, 2]}}}"#,
            r#"{"params": null}"#,
            r#"{"params": {}} x"#,
            r#"{"params": {}, "params": {}}"#,
        ];
        for body in declined {
            assert_eq!(common_params(body.as_bytes()).map(|_| ()), None, "{body}");
        }
    }

    /// Draws choices from a seed (xorshift64). A hostile body also draws the odd choices (not
    /// JSON, or not the common shape), one in `odd_one_in`: often, or rarely enough that one
    /// odd choice is the body's only flaw.
    struct Choices {
        state: u64,
        hostile: bool,
        odd_one_in: usize,
    }

    impl Choices {
        fn below(&mut self, n: usize) -> usize {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            (self.state >> 32) as usize % n
        }

        /// An odd choice is to be made (only in a hostile body).
        fn odd(&mut self) -> bool {
            let odd_one_in = self.odd_one_in;
            self.hostile && self.one_in(odd_one_in)
        }

        /// True one time in `n`.
        fn one_in(&mut self, n: usize) -> bool {
            self.below(n) == 0
        }

        fn pick<'t>(&mut self, (usual, odd): (&[&'t str], &[&'t str])) -> &'t str {
            let items = if self.odd() { odd } else { usual };
            items[self.below(items.len())]
        }
    }

    /// Each list: the usual choices, then the odd ones.
    type Words = (&'static [&'static str], &'static [&'static str]);

    /// JSON's whitespace; two that are not.
    const SPACES: Words = (
        &["", "", "", " ", "\n", "\t ", "\r\n  "],
        &["\u{a0}", "\u{c}"],
    );
    const ENVELOPE_NAMES: Words = (&["params"], &["par\\u0061ms", "extra", "Params"]);
    const PARAMS_NAMES: Words = (
        &[
            "featureServiceId",
            "feature_service_id",
            "featureServiceName",
            "feature_service_name",
            "workspaceName",
            "workspace_name",
            "joinKeyMap",
            "join_key_map",
            "requestContextMap",
            "request_context_map",
            "metadataOptions",
            "metadata_options",
            "requestOptions",
            "request_options",
            "allowPartialResults",
            "allow_partial_results",
            "requestData",
            "request_data",
        ],
        &["extra", "workspace\\u004eame", "featureservicename"],
    );
    const ROW_NAMES: Words = (
        &[
            "joinKeyMap",
            "join_key_map",
            "requestContextMap",
            "request_context_map",
        ],
        &["extra", "joinkeymap"],
    );
    const METADATA_NAMES: Words = (
        &[
            "includeNames",
            "include_names",
            "includeEffectiveTimes",
            "include_effective_times",
            "includeDataTypes",
            "include_data_types",
            "includeSloInfo",
            "include_slo_info",
            "includeServingStatus",
            "include_serving_status",
            "includeFeatureDescriptions",
            "include_feature_descriptions",
            "includeFeatureTags",
            "include_feature_tags",
        ],
        &["includeNothing"],
    );
    const MAP_NAMES: Words = (
        &[
            "user_id",
            "merchant",
            "amount",
            "latencyBudgetMs",
            "aggregationLeadingEdge",
            "",
            "ü",
            "user_id",
        ],
        &["a\\u0062", "tab\there"],
    );
    /// String contents: plain and non-ASCII; escaped (valid and not), raw control characters.
    const STRINGS: Words = (
        &[
            "user_1001",
            "",
            "fraud_Kirlin and Sons",
            "ünïcödé",
            "日本",
            "€x",
            "\u{7f}",
            "AGGREGATION_MODE_LATEST_EVENT_TIME",
        ],
        &[
            "a\\\"b",
            "a\\\\b",
            "\\u00e9",
            "\\ud83d\\ude00",
            "\\ud800",
            "\\x",
            "tab\there",
            "nul\u{0}",
            "\u{1f}",
        ],
    );
    /// Number tokens at serde_json's edges; tokens that are not JSON numbers.
    const NUMBERS: Words = (
        &[
            "0",
            "-0",
            "1",
            "-1",
            "100.5",
            "-100.25",
            "0.1",
            "1e3",
            "1E+2",
            "-2.5e-3",
            "1e-400",
            "1e400",
            "-1e400",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "-18446744073709551616",
            "9007199254740993",
            "9007199254740993.0",
            "9007199254740992.5",
            "0.30000000000000004",
            "123456789012345678901234567890.123",
            "4.9e-324",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "1.0000000000000000000000001",
            "0.0000000000000000000000001",
            "-0.0",
            "1e0001",
        ],
        &[
            "01", "-01", "1.", ".5", "1e", "1e+", "-", "+1", "0x1", "1.5.2", "00", "NaN",
            "Infinity",
        ],
    );
    const LITERALS: Words = (
        &["true", "false", "null"],
        &["nul", "tru", "nulll", "True", "None"],
    );
    const BOOLEANS: Words = (&["true", "false"], &["1", "\"true\""]);

    fn space(c: &mut Choices, out: &mut String) {
        out.push_str(c.pick(SPACES));
    }

    /// An object of `count` fields, each named from `names` and written by `value`, which is
    /// told the name.
    fn object(
        c: &mut Choices,
        out: &mut String,
        count: usize,
        names: Words,
        value: &mut dyn FnMut(&mut Choices, &mut String, &str),
    ) {
        out.push('{');
        for i in 0..count {
            if i > 0 {
                out.push(',');
            }
            space(c, out);
            let name = c.pick(names);
            out.push('"');
            out.push_str(name);
            out.push('"');
            space(c, out);
            out.push(':');
            space(c, out);
            value(c, out, name);
            space(c, out);
        }
        out.push('}');
    }

    fn array(
        c: &mut Choices,
        out: &mut String,
        count: usize,
        item: &mut dyn FnMut(&mut Choices, &mut String),
    ) {
        out.push('[');
        for i in 0..count {
            if i > 0 {
                out.push(',');
            }
            space(c, out);
            item(c, out);
            space(c, out);
        }
        out.push(']');
    }

    fn string(c: &mut Choices, out: &mut String) {
        out.push('"');
        for _ in 0..1 + c.below(2) {
            out.push_str(c.pick(STRINGS));
        }
        out.push('"');
    }

    /// A number: a listed one, or digits drawn (an integer part, a fraction, an exponent).
    fn number(c: &mut Choices, out: &mut String) {
        if c.one_in(2) {
            out.push_str(c.pick(NUMBERS));
            return;
        }
        let digits = |c: &mut Choices, out: &mut String, at_least: usize| {
            for _ in 0..at_least + c.below(22) {
                out.push(char::from(b'0' + c.below(10) as u8));
            }
        };
        if c.one_in(3) {
            out.push('-');
        }
        if c.one_in(3) {
            out.push('0');
            // JSON has no leading zero.
            if c.odd() {
                digits(c, out, 1);
            }
        } else {
            out.push(char::from(b'1' + c.below(9) as u8));
            digits(c, out, 0);
        }
        if c.one_in(2) {
            out.push('.');
            digits(c, out, 1);
        }
        if c.one_in(3) {
            out.push(['e', 'E'][c.below(2)]);
            out.push_str(["", "+", "-"][c.below(3)]);
            digits(c, out, 1);
        }
    }

    /// A scalar, or (an odd choice) any value nested up to `depth`.
    fn value(c: &mut Choices, out: &mut String, depth: usize) {
        if depth > 0 && c.odd() {
            let count = c.below(5);
            match c.below(2) {
                0 => array(c, out, count, &mut |c, out| value(c, out, depth - 1)),
                _ => object(c, out, count, MAP_NAMES, &mut |c, out, _| {
                    value(c, out, depth - 1)
                }),
            }
            return;
        }
        match c.below(4) {
            0 | 1 => string(c, out),
            2 => number(c, out),
            _ => out.push_str(c.pick(LITERALS)),
        }
    }

    /// What `expected` writes, or null, or (an odd choice) any other value.
    fn usually(
        c: &mut Choices,
        out: &mut String,
        expected: &mut dyn FnMut(&mut Choices, &mut String),
    ) {
        if c.odd() {
            value(c, out, 2);
        } else if c.one_in(8) {
            out.push_str("null");
        } else {
            expected(c, out);
        }
    }

    /// A join-key or request-context map.
    fn fields(c: &mut Choices, out: &mut String) {
        usually(c, out, &mut |c, out| {
            let count = c.below(5);
            object(c, out, count, MAP_NAMES, &mut |c, out, _| value(c, out, 1))
        });
    }

    /// The params' fields, each of its own kind (in a hostile body sometimes of another).
    fn params(c: &mut Choices, out: &mut String) {
        let count = c.below(6);
        object(
            c,
            out,
            count,
            PARAMS_NAMES,
            &mut |c, out, name| match name {
                "joinKeyMap" | "join_key_map" | "requestContextMap" | "request_context_map" => {
                    fields(c, out)
                }
                "metadataOptions" | "metadata_options" => usually(c, out, &mut |c, out| {
                    let count = c.below(4);
                    object(c, out, count, METADATA_NAMES, &mut |c, out, _| {
                        usually(c, out, &mut |c, out| out.push_str(c.pick(BOOLEANS)))
                    })
                }),
                "requestOptions" | "request_options" => usually(c, out, &mut |c, out| {
                    let count = c.below(4);
                    object(c, out, count, MAP_NAMES, &mut |c, out, _| value(c, out, 1))
                }),
                "allowPartialResults" | "allow_partial_results" => {
                    usually(c, out, &mut |c, out| out.push_str(c.pick(BOOLEANS)))
                }
                "requestData" | "request_data" => usually(c, out, &mut |c, out| {
                    let rows = c.below(5);
                    array(c, out, rows, &mut |c, out| {
                        usually(c, out, &mut |c, out| {
                            let count = c.below(3);
                            object(c, out, count, ROW_NAMES, &mut |c, out, _| fields(c, out))
                        })
                    })
                }),
                _ => usually(c, out, &mut string),
            },
        );
    }

    /// A request body drawn from `seed`: one in two hostile, and those sometimes damaged a
    /// few bytes' worth.
    fn body(seed: u64) -> Vec<u8> {
        // xorshift needs a state other than 0.
        let c = &mut Choices {
            state: seed | 1,
            hostile: false,
            odd_one_in: 1,
        };
        c.hostile = c.one_in(2);
        c.odd_one_in = [3, 10, 30, 100][c.below(4)];
        let mut out = String::new();
        space(c, &mut out);
        // One field, `params`; an odd body has none or two.
        let count = if c.odd() { 2 * c.below(2) } else { 1 };
        object(c, &mut out, count, ENVELOPE_NAMES, &mut |c, out, _| {
            usually(c, out, &mut params)
        });
        space(c, &mut out);
        if c.odd() {
            out.push_str(["x", "{}", ",", "\u{0}", "null"][c.below(5)]);
        }
        let mut bytes = out.into_bytes();
        let damages = if c.odd() { 1 + c.below(3) } else { 0 };
        for _ in 0..damages {
            let at = c.below(bytes.len() + 1);
            const BYTES: &[u8] = b"{}[]\",:\\ 0-.enu\x00\xc3\xa9\xff";
            match c.below(4) {
                0 if at < bytes.len() => drop(bytes.remove(at)),
                1 if at < bytes.len() => bytes[at] = BYTES[c.below(BYTES.len())],
                2 => bytes.truncate(at),
                _ => bytes.insert(at, BYTES[c.below(BYTES.len())]),
            }
        }
        bytes
    }

    proptest! {
        /// The word-at-a-time scan stops where the byte-at-a-time one does.
        #[test]
        fn a_string_stops_at_its_first_quote_backslash_or_control_character(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), Just(0x1f_u8), Just(0x20_u8), 0x7e_u8..=0xff, any::<u8>()],
                0..40,
            ),
            skip in 0_usize..8,
        ) {
            let bytes = &bytes[skip.min(bytes.len())..];
            let expected = bytes.iter().position(|&b| matches!(b, b'"' | b'\\' | 0..=0x1f));
            prop_assert_eq!(string_stop(bytes), expected);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(50_000))]
        /// Drawn bodies, valid, near-valid and hostile: what the hand reader accepts, serde
        /// reads to the same params.
        #[test]
        fn the_hand_reader_reads_as_serde_or_declines(seed in any::<u64>()) {
            let body = body(seed);
            let (fast, serde) = both(&body);
            if fast.is_some() {
                prop_assert_eq!(fast, serde, "{}", String::from_utf8_lossy(&body));
            }
        }
    }

    /// The property above says nothing of bodies the hand reader declines: a fair share of the
    /// drawn ones must be read by hand (here ~28 %).
    #[test]
    fn many_drawn_bodies_are_read_by_hand() {
        let read = (0..2000)
            .filter(|&seed| common_params(&body(seed)).is_some())
            .count();
        assert!(read > 400, "{read} of 2000 read by hand");
    }
}
