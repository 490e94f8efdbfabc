//! How unique names (`userName`, a group's `displayName`, a service account's `name`) are
//! compared: caseless and after Unicode canonical composition (NFC), so two names that render
//! the same (`é` precomposed, or `e` and a combining accent) are the same name. Stored values
//! keep the client's spelling; only comparisons fold.

use unicode_normalization::UnicodeNormalization;

/// The form two names are compared in.
pub fn fold(name: &str) -> String {
    name.to_lowercase().nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composed_decomposed_and_case_variants_fold_together() {
        assert_eq!(fold("Caf\u{e9} Team"), fold("CAFE\u{301} team"));
        assert_eq!(fold("\u{212b}ngstr\u{f6}m"), fold("\u{e5}ngstro\u{308}m"));
        assert_ne!(fold("cafe"), fold("caf\u{e9}"));
    }
}
