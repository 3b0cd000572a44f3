//! A reader for the small part of YAML that the project's own deployment files use
//! (`docker-compose.yml`, `deploy/prometheus.yml`, Grafana's provisioning files), so tests can
//! check them without a YAML crate.
//!
//! Read: block mappings and block sequences (a sequence may sit at its key's indentation, as
//! compose files often write it; `- key: value` starts a mapping inside a sequence), one-line
//! flow sequences of scalars (`["a", 'b', c]`), plain, single- and double-quoted scalars
//! (escapes `\\ \" \n \t`), literal and folded block scalars (`|`, `|-`, `>`, `>-`, without
//! blank lines inside) and `#` comments. Every scalar is a string (`true` and `9090` too);
//! an empty value, `~` and `null` are [`Yaml::Null`].
//!
//! Anything else — anchors, aliases and merge keys, tags, flow mappings, nested flow
//! sequences, several documents, tabs in indentation, keep-chomping (`|+`), indentation
//! indicators, duplicate keys — is refused with the line number, never guessed at: a file
//! that uses more of YAML than this needs a real parser, not a silent misreading.

/// A YAML value of the supported subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yaml {
    /// An empty value, `~` or `null`.
    Null,
    /// Any scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Yaml>),
    /// A mapping, in file order.
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// Parses `text`; an error names the (1-based) line and what is not understood.
    pub fn parse(text: &str) -> Result<Yaml, String> {
        let mut lines = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let no = n + 1;
            let body = raw.trim_start_matches(' ');
            if body.starts_with('\t') {
                return Err(format!("line {no}: a tab in the indentation"));
            }
            let indent = raw.len() - body.len();
            let content = strip_comment(body).trim_end().to_string();
            lines.push(Line { no, indent, raw: body.trim_end().to_string(), text: content });
        }
        let mut p = Parser { lines, i: 0 };
        p.skip_blank();
        if p.i >= p.lines.len() {
            return Ok(Yaml::Null);
        }
        let first = &p.lines[p.i];
        if first.text == "---" || first.text.starts_with('%') {
            return Err(format!("line {}: document markers and directives are not supported", first.no));
        }
        let value = p.block(first.indent)?;
        p.skip_blank();
        if let Some(l) = p.lines.get(p.i) {
            return Err(format!("line {}: unexpected indentation or content: {:?}", l.no, l.text));
        }
        Ok(value)
    }

    /// The value of `key`, when this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        self.as_map()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value at a path of keys.
    pub fn at(&self, path: &[&str]) -> Option<&Yaml> {
        path.iter().try_fold(self, |v, k| v.get(k))
    }

    /// The string, when this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items, when this is a sequence.
    pub fn as_seq(&self) -> Option<&[Yaml]> {
        match self {
            Yaml::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, when this is a mapping.
    pub fn as_map(&self) -> Option<&[(String, Yaml)]> {
        match self {
            Yaml::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// A sequence of scalars as strings; `None` when this is anything else.
    pub fn strings(&self) -> Option<Vec<String>> {
        self.as_seq()?.iter().map(|v| v.as_str().map(str::to_string)).collect()
    }
}

#[derive(Debug)]
struct Line {
    no: usize,
    indent: usize,
    /// The line after its indentation, comments kept (block scalars' text).
    raw: String,
    /// The line after its indentation, without a comment.
    text: String,
}

#[derive(Debug)]
struct Parser {
    lines: Vec<Line>,
    i: usize,
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

impl Parser {
    fn skip_blank(&mut self) {
        while self.lines.get(self.i).is_some_and(|l| l.text.is_empty()) {
            self.i += 1;
        }
    }

    fn err<T>(&self, why: impl std::fmt::Display) -> Result<T, String> {
        let no = self.lines.get(self.i).map_or(self.lines.len(), |l| l.no);
        Err(format!("line {no}: {why}"))
    }

    /// The block (mapping or sequence) whose lines start at `indent`.
    fn block(&mut self, indent: usize) -> Result<Yaml, String> {
        self.skip_blank();
        if is_item(&self.lines[self.i].text) {
            self.seq(indent)
        } else {
            self.map(indent)
        }
    }

    fn seq(&mut self, indent: usize) -> Result<Yaml, String> {
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            let Some(line) = self.lines.get(self.i) else { break };
            if line.indent < indent || line.indent == indent && !is_item(&line.text) {
                break;
            }
            if line.indent > indent {
                return self.err("unexpected indentation in a sequence");
            }
            let rest = line.text[1..].trim_start().to_string();
            let offset = indent + line.text.len() - rest.len();
            if rest.is_empty() {
                self.i += 1;
                self.skip_blank();
                match self.lines.get(self.i) {
                    Some(next) if next.indent > indent => {
                        let at = next.indent;
                        items.push(self.block(at)?);
                    }
                    _ => items.push(Yaml::Null),
                }
            } else if is_item(&rest) {
                return self.err("a sequence inside a sequence on one line is not supported");
            } else if split_key(&rest).is_some() {
                // `- key: value`: a mapping whose first line starts at `offset`.
                let line = &mut self.lines[self.i];
                line.indent = offset;
                line.text = rest;
                items.push(self.map(offset)?);
            } else if let Some(style) = block_scalar_style(&rest) {
                self.i += 1;
                items.push(self.block_scalar(indent, style)?);
            } else {
                let value = scalar(&rest).or_else(|e| self.err(e))?;
                self.i += 1;
                items.push(value);
            }
        }
        Ok(Yaml::Seq(items))
    }

    fn map(&mut self, indent: usize) -> Result<Yaml, String> {
        let mut entries: Vec<(String, Yaml)> = Vec::new();
        loop {
            self.skip_blank();
            let Some(line) = self.lines.get(self.i) else { break };
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return self.err("unexpected indentation in a mapping");
            }
            if is_item(&line.text) {
                return self.err("a sequence item where a key was expected");
            }
            let Some((key, value)) = split_key(&line.text) else {
                return self.err(format!("expected `key: value`, found {:?}", line.text));
            };
            let key = match scalar(key).or_else(|e| self.err(e))? {
                Yaml::Str(k) => k,
                _ => return self.err("a key must be a string"),
            };
            if entries.iter().any(|(k, _)| *k == key) {
                return self.err(format!("duplicate key {key:?}"));
            }
            let value = value.to_string();
            self.i += 1;
            let value = if value.is_empty() {
                self.skip_blank();
                match self.lines.get(self.i) {
                    Some(next) if next.indent > indent => {
                        let at = next.indent;
                        self.block(at)?
                    }
                    Some(next) if next.indent == indent && is_item(&next.text) => self.seq(indent)?,
                    _ => Yaml::Null,
                }
            } else if let Some(style) = block_scalar_style(&value) {
                self.block_scalar(indent, style)?
            } else {
                scalar(&value).or_else(|e| {
                    self.i -= 1;
                    self.err(e)
                })?
            };
            entries.push((key, value));
        }
        Ok(Yaml::Map(entries))
    }

    /// The lines of a block scalar, more indented than `parent`.
    fn block_scalar(&mut self, parent: usize, (literal, strip): (bool, bool)) -> Result<Yaml, String> {
        let mut parts: Vec<String> = Vec::new();
        let mut content_indent = None;
        while let Some(line) = self.lines.get(self.i) {
            if line.raw.is_empty() {
                // A blank line ends the scalar only if what follows is not part of it.
                let next = self.lines[self.i..].iter().find(|l| !l.raw.is_empty());
                if next.is_some_and(|l| l.indent > parent) {
                    return self.err("blank lines inside a block scalar are not supported");
                }
                break;
            }
            if line.indent <= parent {
                break;
            }
            let at = *content_indent.get_or_insert(line.indent);
            if line.indent < at {
                return self.err("a block scalar line less indented than its first line");
            }
            if line.indent > at && !literal {
                return self.err("more-indented lines in a folded block scalar are not supported");
            }
            parts.push(format!("{}{}", " ".repeat(line.indent - at), line.raw));
            self.i += 1;
        }
        if parts.is_empty() {
            return self.err("an empty block scalar");
        }
        let mut text = parts.join(if literal { "\n" } else { " " });
        if !strip {
            text.push('\n');
        }
        Ok(Yaml::Str(text))
    }
}

/// `|`, `|-`, `>`, `>-` → (literal, strip the final newline).
fn block_scalar_style(text: &str) -> Option<(bool, bool)> {
    match text {
        "|" => Some((true, false)),
        "|-" => Some((true, true)),
        ">" => Some((false, false)),
        ">-" => Some((false, true)),
        _ => None,
    }
}

/// Splits `key: value` (or `key:`) at the first colon followed by a space or the end, outside
/// quotes; `None` when the line is not a mapping entry.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let key_end = match bytes.first()? {
        b'[' | b'{' => return None,
        q @ (b'"' | b'\'') => {
            let close = quoted_end(text, *q)?;
            if bytes.get(close + 1) != Some(&b':') {
                return None;
            }
            close + 1
        }
        _ => (0..bytes.len()).find(|&i| bytes[i] == b':' && matches!(bytes.get(i + 1), None | Some(b' ')))?,
    };
    if !matches!(bytes.get(key_end + 1), None | Some(b' ')) {
        return None;
    }
    Some((text[..key_end].trim_end(), text[key_end + 1..].trim()))
}

/// The index of the quote closing the quoted scalar that starts `text`.
fn quoted_end(text: &str, quote: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 2,
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b if b == quote => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The line without a `#` comment (one at the start or after a space, outside quotes; a
/// quote opens a quoted scalar only where a scalar can start).
fn strip_comment(text: &str) -> &str {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_scalar = i == 0 || matches!(bytes[i - 1], b' ' | b'[' | b',');
        match bytes[i] {
            b'#' if i == 0 || bytes[i - 1] == b' ' => return &text[..i],
            q @ (b'"' | b'\'') if starts_scalar => match quoted_end(&text[i..], q) {
                Some(end) => i += end + 1,
                None => return text,
            },
            _ => i += 1,
        }
    }
    text
}

/// A one-line value: a flow sequence of scalars, or one scalar.
fn scalar(text: &str) -> Result<Yaml, String> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("a flow sequence must end on its line with ]")?;
        if inner.trim().is_empty() {
            return Ok(Yaml::Seq(Vec::new()));
        }
        return split_flow(inner)?
            .into_iter()
            .map(|item| atom(item.trim()))
            .collect::<Result<_, _>>()
            .map(Yaml::Seq);
    }
    atom(text)
}

/// The items of a flow sequence's inside, split at commas outside quotes.
fn split_flow(inner: &str) -> Result<Vec<&str>, String> {
    let bytes = inner.as_bytes();
    let (mut items, mut start, mut i) = (Vec::new(), 0, 0);
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'') if inner[start..i].trim().is_empty() => {
                i += quoted_end(&inner[i..], q).ok_or("an unterminated quoted scalar")? + 1;
            }
            b'[' | b'{' => return Err("nested flow collections are not supported".into()),
            b',' => {
                items.push(&inner[start..i]);
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    items.push(&inner[start..]);
    if items.iter().any(|s| s.trim().is_empty()) {
        return Err("an empty item in a flow sequence".into());
    }
    Ok(items)
}

fn atom(text: &str) -> Result<Yaml, String> {
    let first = text.as_bytes().first().copied();
    match first {
        None => Ok(Yaml::Null),
        Some(q @ (b'"' | b'\'')) => {
            let end = quoted_end(text, q).ok_or("an unterminated quoted scalar")?;
            if end != text.len() - 1 {
                return Err(format!("text after a quoted scalar: {text:?}"));
            }
            let body = &text[1..end];
            if q == b'\'' {
                return Ok(Yaml::Str(body.replace("''", "'")));
            }
            let mut out = String::new();
            let mut chars = body.chars();
            while let Some(c) = chars.next() {
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('\\') => out.push('\\'),
                    Some('"') => out.push('"'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    other => return Err(format!("the escape \\{} is not supported", other.unwrap_or(' '))),
                }
            }
            Ok(Yaml::Str(out))
        }
        Some(b'{') => Err("flow mappings are not supported".into()),
        Some(b'&' | b'*') => Err("anchors and aliases are not supported".into()),
        Some(b'!') => Err("tags are not supported".into()),
        Some(b'|' | b'>') => Err(format!("this block scalar header is not supported: {text:?}")),
        Some(b'%' | b'@' | b'`') => Err(format!("a plain scalar cannot start with {:?}", text)),
        Some(_) if text == "~" || text == "null" => Ok(Yaml::Null),
        Some(_) if text == "<<" => Err("merge keys are not supported".into()),
        Some(_) => Ok(Yaml::Str(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Yaml {
        Yaml::Str(v.into())
    }

    #[test]
    fn reads_a_compose_like_file() {
        let text = r#"
# a comment
services:
  one:   # trailing comment
    image: "img:1"   # quoted, with a colon
    command: ["sh", "-c", 'echo it''s, "here" # not a comment']
    ports:
    - "1:1/udp"
    - 2
    depends_on:
      two:
        condition: service_healthy
    environment:
      A: http://x:9090
      B:
    script: >-
      first line
      second # kept
    literal: |
      a
        b
  two:
    targets:
      - name: x
        url: y
      -
        name: z
volumes:
  data:
"#;
        let y = Yaml::parse(text).expect("parse");
        let one = y.at(&["services", "one"]).expect("one");
        assert_eq!(one.get("image"), Some(&s("img:1")));
        assert_eq!(
            one.get("command").and_then(Yaml::strings),
            Some(vec!["sh".into(), "-c".into(), "echo it's, \"here\" # not a comment".into()])
        );
        assert_eq!(one.get("ports").and_then(Yaml::strings), Some(vec!["1:1/udp".into(), "2".into()]));
        assert_eq!(one.at(&["depends_on", "two", "condition"]), Some(&s("service_healthy")));
        assert_eq!(one.at(&["environment", "A"]), Some(&s("http://x:9090")));
        assert_eq!(one.at(&["environment", "B"]), Some(&Yaml::Null));
        assert_eq!(one.get("script"), Some(&s("first line second # kept")));
        assert_eq!(one.get("literal"), Some(&s("a\n  b\n")));
        let targets = y.at(&["services", "two", "targets"]).and_then(Yaml::as_seq).expect("targets");
        assert_eq!(targets[0], Yaml::Map(vec![("name".into(), s("x")), ("url".into(), s("y"))]));
        assert_eq!(targets[1], Yaml::Map(vec![("name".into(), s("z"))]));
        assert_eq!(y.at(&["volumes", "data"]), Some(&Yaml::Null));
    }

    #[test]
    fn refuses_what_it_does_not_read_with_the_line() {
        for (text, why) in [
            ("a: &x 1\nb: *x\n", "line 1: anchors"),
            ("a: 1\na: 2\n", "line 2: duplicate key"),
            ("a: {b: 1}\n", "line 1: flow mappings"),
            ("a:\n  b: 1\n   c: 2\n", "line 3: unexpected indentation"),
            ("a: [1, [2]]\n", "line 1: nested flow"),
            ("a: |+\n  x\n", "line 1: this block scalar header"),
            ("a: >\n  x\n\n  y\n", "line 3: blank lines inside a block scalar"),
            ("a:\n\tb: 1\n", "line 2: a tab"),
            ("---\na: 1\n", "line 1: document markers"),
            ("a: \"x\" y\n", "line 1: text after a quoted scalar"),
            ("just words\n", "line 1: expected `key: value`"),
        ] {
            let err = Yaml::parse(text).expect_err(text);
            assert!(err.starts_with(why), "{text:?}: {err}");
        }
    }
}
