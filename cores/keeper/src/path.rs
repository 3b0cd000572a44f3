//! Znode paths, validated as ZooKeeper's `PathUtils.validatePath` does: absolute, no empty
//! segments, no `.` or `..` segments, no trailing slash except the root, no NUL and no
//! control or reserved characters.

use crate::error::KeeperError;

/// Checks `path` (for a sequential create, the path before its suffix is added).
pub fn validate(path: &str) -> Result<(), KeeperError> {
    let bad =
        |reason: &str| Err(KeeperError::InvalidPath { path: path.to_string(), reason: reason.to_string() });
    if path.is_empty() {
        return bad("empty path");
    }
    if !path.starts_with('/') {
        return bad("must start with /");
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return bad("must not end with /");
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return bad("empty segment (//)"),
            "." | ".." => return bad("relative segments (. and ..) are not allowed"),
            _ => {}
        }
    }
    for c in path.chars() {
        let u = c as u32;
        if u == 0 {
            return bad("contains NUL");
        }
        if (0x1..=0x1f).contains(&u)
            || (0x7f..=0x9f).contains(&u)
            || (0xd800..=0xf8ff).contains(&u)
            || (0xfff0..=0xffff).contains(&u)
        {
            return bad(&format!("contains the disallowed character U+{u:04X}"));
        }
    }
    Ok(())
}

/// The parent of a valid path (`None` for the root).
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last segment of a valid path (empty for the root).
pub fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// `parent` + `/` + `child`.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Whether `path` is `ancestor` or lies below it.
pub fn is_within(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.len() > ancestor.len()
            && path.starts_with(ancestor)
            && path.as_bytes()[ancestor.len()] == b'/')
}

/// The sequential suffix ZooKeeper appends: the counter as 10 zero-padded digits.
pub fn sequential(path: &str, counter: i32) -> String {
    format!("{path}{counter:010}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths_pass_and_invalid_ones_say_why() {
        for ok in ["/", "/a", "/a/b", "/brokers/ids/1", "/a-b_c.d", "/é"] {
            validate(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("", "empty"),
            ("a", "start with /"),
            ("/a/", "end with /"),
            ("//a", "empty segment"),
            ("/a//b", "empty segment"),
            ("/a/./b", "relative"),
            ("/a/..", "relative"),
            ("/a\u{0}b", "NUL"),
            ("/a\u{1}b", "U+0001"),
            ("/a\u{fff5}", "U+FFF5"),
        ] {
            let err = validate(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn parents_names_joins_and_ancestry() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b/c"), Some("/a/b"));
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(is_within("/x", "/"));
        assert!(!is_within("/ab", "/a"));
        assert_eq!(sequential("/q/item-", 7), "/q/item-0000000007");
    }
}
