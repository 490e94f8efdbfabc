//! Entity tags of SCIM resources (RFC 7644 §3.14, RFC 7232): what `If-Match` and
//! `If-None-Match` name, compared weakly (`W/"3"` and `"3"` are the same version), and the
//! check a change runs against the resource's current version, inside the directory actor so
//! that no other change can slip between the check and the write.

use super::error::{ScimError, ScimErrorKind};

/// The value of an `If-Match` or `If-None-Match` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityTags {
    /// `*`: any current version.
    Any,
    /// Opaque tags without their `W/` prefix.
    Tags(Vec<String>),
}

fn opaque(tag: &str) -> &str {
    let tag = tag.trim();
    tag.strip_prefix("W/").unwrap_or(tag)
}

impl EntityTags {
    pub fn parse(header: &str) -> EntityTags {
        if header.trim() == "*" {
            return EntityTags::Any;
        }
        EntityTags::Tags(
            header
                .split(',')
                .map(opaque)
                .filter(|tag| !tag.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Whether `version_tag` (a resource's `meta.version`) is named.
    pub fn contains(&self, version_tag: &str) -> bool {
        match self {
            EntityTags::Any => true,
            EntityTags::Tags(tags) => tags.iter().any(|tag| tag == opaque(version_tag)),
        }
    }
}

/// The conditions a request puts on the version it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<EntityTags>,
    pub if_none_match: Option<EntityTags>,
}

impl Preconditions {
    pub fn check(&self, version_tag: &str) -> Result<(), ScimError> {
        if let Some(tags) = &self.if_match {
            if !tags.contains(version_tag) {
                return Err(ScimError::new(
                    ScimErrorKind::PreconditionFailed,
                    format!("If-Match does not name the current version {version_tag}"),
                ));
            }
        }
        if let Some(tags) = &self.if_none_match {
            if tags.contains(version_tag) {
                return Err(ScimError::new(
                    ScimErrorKind::PreconditionFailed,
                    format!("If-None-Match names the current version {version_tag}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_comparison_lists_and_star() {
        let tags = EntityTags::parse(r#"W/"2", "3""#);
        assert!(tags.contains(r#"W/"3""#) && tags.contains(r#"W/"2""#));
        assert!(!tags.contains(r#"W/"4""#));
        assert!(EntityTags::parse(" * ").contains(r#"W/"9""#));
        let stale = Preconditions {
            if_match: Some(EntityTags::parse(r#"W/"1""#)),
            if_none_match: None,
        };
        assert_eq!(
            stale.check(r#"W/"2""#).unwrap_err().kind,
            ScimErrorKind::PreconditionFailed
        );
        assert!(stale.check(r#"W/"1""#).is_ok());
        let fresh_only = Preconditions {
            if_match: None,
            if_none_match: Some(EntityTags::Any),
        };
        assert!(fresh_only.check(r#"W/"1""#).is_err());
    }
}
