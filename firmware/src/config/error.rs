//! Configuration errors that point at the file, line and key, and say what was expected.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration problem, located as precisely as the file allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file with the problem.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The dotted key path (`queue.services[1].letter`), when known.
    pub key: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ConfigError {
    /// An error about the whole file (unreadable, missing).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
        }
    }

    /// An error about `key`, located by looking the key up in `text`.
    pub fn at_key(file: &Path, text: &str, key: &str, message: impl Into<String>) -> Self {
        let span = span_of_key(text, key);
        let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
        Self {
            file: file.to_owned(),
            line,
            column,
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    pub(crate) fn from_toml(
        file: &Path,
        text: &str,
        err: &toml::de::Error,
        key: Option<String>,
    ) -> Self {
        let key = key.filter(|k| !k.is_empty() && k != ".");
        let span = err
            .span()
            .or_else(|| key.as_deref().and_then(|k| span_of_key(text, k)));
        let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
        Self {
            file: file.to_owned(),
            line,
            column,
            key,
            message: err.message().trim().to_owned(),
        }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

/// The span of the value at a dotted key path (`a.b[2].c`) in a TOML document, if present.
pub fn span_of_key(text: &str, key: &str) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut segments = parse_path(key)?.into_iter().peekable();
    let mut table = doc.get_ref();
    let mut span = None;
    while let Some(seg) = segments.next() {
        let Segment::Key(name, index) = seg;
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
        span = Some(k.span());
        let mut value = v;
        if let Some(i) = index {
            let DeValue::Array(items) = value.get_ref() else {
                return span;
            };
            value = items.get(i)?;
            span = Some(value.span());
        }
        if segments.peek().is_none() {
            return span;
        }
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return span,
        }
    }
    span
}

enum Segment<'a> {
    Key(&'a str, Option<usize>),
}

fn parse_path(key: &str) -> Option<Vec<Segment<'_>>> {
    key.split('.')
        .map(|part| match part.split_once('[') {
            Some((name, rest)) => {
                let index = rest.strip_suffix(']')?.parse().ok()?;
                Some(Segment::Key(name, Some(index)))
            }
            None => Some(Segment::Key(part, None)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[kiosk]\nstore = \"x\"\n\n[[queue.services]]\nletter = \"A\"\n\n[[queue.services]]\nletter = \"B\"\n";

    #[test]
    fn key_paths_resolve_to_their_line() {
        let line = |k| span_of_key(DOC, k).map(|s| line_col(DOC, s.start).0);
        assert_eq!(line("kiosk.store"), Some(2));
        assert_eq!(line("queue.services[1].letter"), Some(8));
        assert_eq!(line("queue.services[0].letter"), Some(5));
        assert_eq!(line("nope.store"), None);
    }

    #[test]
    fn display_names_file_line_key_and_expectation() {
        let e = ConfigError::at_key(
            Path::new("/etc/kiosk/site.toml"),
            DOC,
            "kiosk.store",
            "expected a store id",
        );
        assert_eq!(
            e.to_string(),
            "/etc/kiosk/site.toml:2:1: key `kiosk.store`: expected a store id"
        );
    }
}
