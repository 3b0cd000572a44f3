//! Kafka-style `.properties` files: `key=value` (or `key: value`) lines, `#` and `!`
//! comments, blank lines ignored. Every error names the file, the line number and why.

use std::path::{Path, PathBuf};

/// One `key=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, trimmed.
    pub key: String,
    /// The value, trimmed.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// What is wrong with a properties file.
#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS reason.
        source: std::io::Error,
    },
    /// A line is not `key=value`.
    #[error("{path}:{line}: {reason}: {text:?}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line as written.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key is given twice.
    #[error("{path}:{line}: {key} is already set on line {first}")]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The second occurrence.
        line: usize,
        /// The first.
        first: usize,
        /// The key.
        key: String,
    },
    /// A key this file may not hold.
    #[error("{path}:{line}: unknown key {key:?}{}; known keys: {known}", suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
        /// The known key closest to it, if one is close (a typo).
        suggestion: Option<String>,
        /// The keys allowed here, comma-separated.
        known: String,
    },
    /// A value is invalid.
    #[error("{path}:{line}: {key}={value}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0: the key is not in the file; its default is invalid with
        /// the rest).
        line: usize,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why, and what to write instead.
        reason: String,
    },
    /// A required key is missing.
    #[error("{path}: {key} is required ({hint})")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What to put there.
        hint: &'static str,
    },
}

impl PropertiesError {
    /// `entry` of the file at `path` holds an invalid value.
    pub fn invalid(path: &Path, entry: &Entry, reason: impl Into<String>) -> Self {
        PropertiesError::Invalid {
            path: path.into(),
            line: entry.line,
            key: entry.key.clone(),
            value: entry.value.clone(),
            reason: reason.into(),
        }
    }

    /// The file at `path` lacks the required `key`.
    pub fn missing(path: &Path, key: &'static str, hint: &'static str) -> Self {
        PropertiesError::Missing { path: path.into(), key, hint }
    }
}

/// Parses properties text; `path` is only used in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Entry>, PropertiesError> {
    let mut entries: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('!') {
            continue;
        }
        let syntax =
            |reason| PropertiesError::Syntax { path: path.into(), line, text: raw.to_string(), reason };
        let split = t.find(['=', ':']).ok_or_else(|| syntax("expected key=value"))?;
        let key = t[..split].trim();
        let value = t[split + 1..].trim();
        if key.is_empty() {
            return Err(syntax("empty key"));
        }
        if key.contains(char::is_whitespace) {
            return Err(syntax("key contains white space"));
        }
        if let Some(first) = entries.iter().find(|e| e.key == key) {
            return Err(PropertiesError::Duplicate {
                path: path.into(),
                line,
                first: first.line,
                key: key.into(),
            });
        }
        entries.push(Entry { key: key.into(), value: value.into(), line });
    }
    Ok(entries)
}

/// `text` with `overrides` applied (kafka-server-start.sh's `--override key=value`): each
/// line setting an overridden key becomes a comment saying so (line numbers stay those of
/// the file), and the overrides are appended, each on its own line.
pub fn apply_overrides(text: &str, overrides: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for raw in text.lines() {
        let t = raw.trim();
        let key = t.find(['=', ':']).map(|i| t[..i].trim());
        match key {
            Some(k)
                if !t.starts_with('#') && !t.starts_with('!') && overrides.iter().any(|(o, _)| o == k) =>
            {
                out.push_str("# overridden by --override: ");
                out.push_str(t);
            }
            _ => out.push_str(raw),
        }
        out.push('\n');
    }
    for (k, v) in overrides {
        out.push_str(k);
        out.push('=');
        out.push_str(v);
        out.push('\n');
    }
    out
}

/// Reads and parses a properties file, refusing keys outside `known`.
pub fn read(path: &Path, known: &[&str]) -> Result<Vec<Entry>, PropertiesError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PropertiesError::Read { path: path.into(), source })?;
    let entries = parse(&text, path)?;
    refuse_unknown(&entries, path, |k| known.contains(&k), known.iter().copied())?;
    Ok(entries)
}

/// Refuses the first entry whose key `is_known` rejects, naming the file, the line and the
/// `known` keys.
pub fn refuse_unknown<'a>(
    entries: &[Entry],
    path: &Path,
    is_known: impl Fn(&str) -> bool,
    known: impl IntoIterator<Item = &'a str>,
) -> Result<(), PropertiesError> {
    match entries.iter().find(|e| !is_known(&e.key)) {
        None => Ok(()),
        Some(e) => {
            let known: Vec<&str> = known.into_iter().collect();
            Err(PropertiesError::UnknownKey {
                path: path.into(),
                line: e.line,
                key: e.key.clone(),
                suggestion: closest(&e.key, &known).map(str::to_string),
                known: known.join(", "),
            })
        }
    }
}

/// The key of `known` nearest to `key` by edit distance, if it is near enough to be a typo
/// of it (at most 2 edits, or a fifth of its length for long keys).
pub fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (key.len() / 5).max(2);
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_values_comments_and_both_separators() {
        let text = "# comment\n! also a comment\n\nbroker.id = 1\nlog.dirs: /tmp/a=b\n  empty=\n";
        let e = parse(text, Path::new("s.properties")).expect("parse");
        assert_eq!(
            e,
            vec![
                Entry { key: "broker.id".into(), value: "1".into(), line: 4 },
                Entry { key: "log.dirs".into(), value: "/tmp/a=b".into(), line: 5 },
                Entry { key: "empty".into(), value: "".into(), line: 6 },
            ]
        );
    }

    #[test]
    fn errors_name_the_file_the_line_and_why() {
        let err = parse("a=1\nnot a pair\n", Path::new("x.properties")).expect_err("syntax");
        assert_eq!(err.to_string(), "x.properties:2: expected key=value: \"not a pair\"");
        let err = parse("a=1\n\na=2\n", Path::new("x.properties")).expect_err("dup");
        assert_eq!(err.to_string(), "x.properties:3: a is already set on line 1");
        let err = parse("=1\n", Path::new("x.properties")).expect_err("empty key");
        assert!(err.to_string().starts_with("x.properties:1: empty key"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_with_the_known_ones_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.properties");
        std::fs::write(&path, "tls.ca.file=a\ntls.cert.fiel=b\n").expect("write");
        let err = read(&path, &["tls.ca.file", "tls.cert.file"]).expect_err("unknown");
        let msg = err.to_string();
        assert!(msg.contains(":2: unknown key \"tls.cert.fiel\""), "{msg}");
        assert!(msg.contains("tls.cert.file"), "{msg}");
    }

    #[test]
    fn overrides_replace_their_keys_and_keep_line_numbers() {
        let text = "a=1\n# b=old\nb=2\nc=3\n";
        let out = apply_overrides(text, &[("b".into(), "9".into()), ("d".into(), "4".into())]);
        assert_eq!(out, "a=1\n# b=old\n# overridden by --override: b=2\nc=3\nb=9\nd=4\n");
        let entries = parse(&out, Path::new("f")).expect("no duplicate");
        let b = entries.iter().find(|e| e.key == "b").expect("b");
        assert_eq!((b.value.as_str(), b.line), ("9", 5));
    }

    #[test]
    fn an_unknown_key_near_a_known_one_is_suggested() {
        let entries = parse("num.netwrok.threads=3\n", Path::new("s")).expect("parse");
        let e =
            refuse_unknown(&entries, Path::new("s"), |_| false, ["num.network.threads", "num.partitions"])
                .expect_err("unknown");
        assert!(e.to_string().contains("(did you mean \"num.network.threads\"?)"), "{e}");
        assert_eq!(closest("completely.else", &["num.partitions"]), None);
    }
}
