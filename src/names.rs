//! The rules for names that become path segments or parts of other names, shared by the
//! modules that own those names and those that read them back (the ground floor, beside
//! `time`: calls nothing). A workspace's name is a directory's (its feature logs) and the
//! suffix of a `workspace_<name>` role; a Tecton secret scope's name is a URL segment and the
//! suffix of a `secret_scope_<scope>` role, and its keys are URL segments too.

/// One path segment that no HTTP client or file system resolves away: letters, digits, `_`,
/// `-` and `.`, other than `.` and `..` (a client sends neither as it is).
pub fn is_path_segment(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// A workspace's name. The dot is allowed, unlike in a repository's other names, so that a
/// workspace applied before the rule existed still loads from its snapshot.
pub fn is_workspace_name(name: &str) -> bool {
    is_path_segment(name)
}

/// A Tecton secret scope's or key's name: a path segment of at most 128 bytes.
pub fn is_scope_name(name: &str) -> bool {
    name.len() <= 128 && is_path_segment(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_path_segments() {
        for name in ["prod", "prod.eu", "a_b-c", ".hidden", "v1..2"] {
            assert!(is_workspace_name(name), "{name}");
        }
        for name in ["", ".", "..", "a/b", "a b", "x\0y", "é"] {
            assert!(!is_workspace_name(name), "{name:?}");
        }
        assert!(is_scope_name(&"x".repeat(128)));
        assert!(!is_scope_name(&"x".repeat(129)));
    }
}
