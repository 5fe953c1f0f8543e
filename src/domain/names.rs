//! Names: what a repository, view, snapshot or alias may be called (they are URL path
//! segments), and how snapshot names are made.

/// Is `id` usable as a repository, snapshot or alias name in a URL?
pub fn valid_name(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b':'))
        && !id.starts_with('.')
}

/// Names that cannot be snapshot names because URLs use them.
pub const RESERVED_NAMES: [&str; 3] = ["latest", "repodata", "Packages"];

/// Expands a snapshot name template: `{date}` (2026-11-23), `{datetime}`
/// (2026-11-23T120000Z), `{repo}`.
pub fn expand(template: &str, repo: &str, now: time::OffsetDateTime) -> String {
    let date = now
        .format(&time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default();
    let datetime = now
        .format(&time::macros::format_description!(
            "[year]-[month]-[day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    template
        .replace("{datetime}", &datetime)
        .replace("{date}", &date)
        .replace("{repo}", repo)
}

/// The name of a snapshot created without one: the UTC date and time, `2026-11-23T120000Z`.
pub fn default_snapshot_name(now: time::OffsetDateTime) -> String {
    expand("{datetime}", "", now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand() {
        let t = time::macros::datetime!(2026-11-23 12:34:56 UTC);
        assert_eq!(expand("{date}", "epel", t), "2026-11-23");
        assert_eq!(
            expand("{repo}-{datetime}", "epel", t),
            "epel-2026-11-23T123456Z"
        );
        assert_eq!(default_snapshot_name(t), "2026-11-23T123456Z");
    }
}
