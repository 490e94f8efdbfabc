//! How an error message shows a value a client sent (a name, an id, a field, a row's value):
//! whole up to [`ECHOED_CHARS_AT_MOST`] characters, else its first ones and its length. An
//! error body reaches logs and proxies, and a clear error names the value, it does not repeat
//! a megabyte of it. The ground floor, beside `names`: every family's messages use it.

use std::fmt;

/// The most characters of a client's value an error message repeats.
pub const ECHOED_CHARS_AT_MOST: usize = 64;

/// `value` as an error message shows it: `aaaa… (5000 bytes)` when it is longer than
/// [`ECHOED_CHARS_AT_MOST`] characters.
pub fn echo(value: &str) -> Echo<'_> {
    Echo(value)
}

/// See [`echo`].
#[derive(Clone, Copy)]
pub struct Echo<'a>(&'a str);

impl Echo<'_> {
    /// The part shown, and the whole length when that is not all of it.
    fn shown(&self) -> (&str, Option<usize>) {
        match self.0.char_indices().nth(ECHOED_CHARS_AT_MOST) {
            None => (self.0, None),
            Some((cut, _)) => (&self.0[..cut], Some(self.0.len())),
        }
    }
}

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shown() {
            (shown, None) => f.write_str(shown),
            (shown, Some(len)) => write!(f, "{shown}… ({len} bytes)"),
        }
    }
}

/// As [`Echo`]'s text, quoted and escaped as `{:?}` quotes a string.
impl fmt::Debug for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shown() {
            (shown, None) => write!(f, "{shown:?}"),
            (shown, Some(len)) => write!(f, "{shown:?}… ({len} bytes)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_shown_whole_up_to_the_bound_then_cut_with_its_length() {
        let at_bound = "é".repeat(ECHOED_CHARS_AT_MOST);
        assert_eq!(echo(&at_bound).to_string(), at_bound);
        let over = format!("{at_bound}x");
        assert_eq!(
            echo(&over).to_string(),
            format!("{at_bound}… ({} bytes)", over.len())
        );
        assert_eq!(format!("{:?}", echo("a\"b")), r#""a\"b""#);
        assert_eq!(
            format!("{:?}", echo(&"a".repeat(100))),
            format!("\"{}\"… (100 bytes)", "a".repeat(64))
        );
    }
}
