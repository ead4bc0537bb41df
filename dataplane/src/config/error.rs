//! Configuration errors and the machinery that gives each one a file, line, column and field.
//!
//! Format (one line per problem): `FILE:LINE:COLUMN: field `client[1].delivery[0].mtu`: message`.
//! Lines and columns are 1-based; the column counts characters, as editors do. Array-of-tables
//! indices are 0-based in file order (`client[1]` is the second `[[client]]`).
//!
//! Semantic checks run on plain serde types and name the offending value by its path; the path
//! is then located in a `toml_edit` parse of the same text, which keeps the span of every key and
//! value. Serde errors arrive with a span and no path; the path is found by the reverse walk.

use std::fmt;
use std::ops::Range;

use toml_edit::{Array, ArrayOfTables, ImDocument, InlineTable, Item, Table, Value};

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted field path such as `client[1].delivery[0].mtu`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Path(pub Vec<Seg>);

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }
    /// This path extended by a key.
    pub fn key(&self, k: &str) -> Path {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_owned()));
        Path(v)
    }
    /// This path extended by an array index.
    pub fn idx(&self, i: usize) -> Path {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Path(v)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (n, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if n == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given to [`super::Config::load`] or [`super::Config::parse`].
    pub file: String,
    /// 1-based line; 0 when the problem has no position (the file could not be read).
    pub line: usize,
    /// 1-based column in characters; 0 when `line` is 0.
    pub column: usize,
    /// Dotted field path, e.g. `client[1].delivery[0].mtu`; `(top level)` for the document.
    pub field: String,
    /// What is wrong, and where it helps, what is allowed.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: field `{}`: {}",
                self.file, self.line, self.column, self.field, self.message
            )
        }
    }
}

/// A rejected configuration: one or more [`Diagnostic`]s, in file order. Syntax and type
/// errors stop at the first; semantic checks report every problem they find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    /// The first (earliest in the file) problem.
    pub fn first(&self) -> Option<&Diagnostic> {
        self.diagnostics.first()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, d) in self.diagnostics.iter().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Byte offset -> (line, column), both 1-based; the column counts characters.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(l) => l,
            Err(l) => l.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Collects semantic problems as (path, message) and turns them into diagnostics.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<(Path, String)>);

impl Problems {
    pub fn push(&mut self, path: Path, msg: impl Into<String>) {
        self.0.push((path, msg.into()));
    }
}

/// Builds diagnostics for one file.
pub(crate) struct Locator<'a> {
    pub file: &'a str,
    pub lines: LineIndex<'a>,
    pub doc: Option<&'a ImDocument<&'a str>>,
}

impl Locator<'_> {
    pub fn at_offset(&self, offset: usize, field: &Path, message: String) -> Diagnostic {
        let (line, column) = self.lines.line_col(offset);
        Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_string(),
            message,
        }
    }

    /// A diagnostic for a semantic problem: located at the value of `path`, or at the deepest
    /// part of it that exists in the file (a defaulted field points at its table).
    pub fn at_path(&self, path: &Path, message: String) -> Diagnostic {
        let offset = self
            .doc
            .and_then(|d| locate(d.as_table(), path))
            .unwrap_or(0);
        self.at_offset(offset, path, message)
    }

    /// A diagnostic for a serde error: the path is found from the span.
    pub fn at_span(&self, span: Option<Range<usize>>, message: &str) -> Diagnostic {
        let start = span.as_ref().map_or(0, |s| s.start);
        let mut path = match (self.doc, &span) {
            (Some(d), Some(s)) => find_path(d.as_table(), s.clone()).unwrap_or_default(),
            _ => Path::root(),
        };
        let mut offset = start;
        // serde names an unknown or missing key in the message and points at its table; point at
        // the key itself when it exists, and name it in the path.
        if let Some(k) = backticked(message, "unknown field `") {
            if path.0.last() != Some(&Seg::Key(k.to_owned())) {
                path = path.key(k);
            }
            if let Some(o) = self.doc.and_then(|d| locate_key(d.as_table(), &path)) {
                offset = o;
            }
        }
        self.at_offset(offset, &path, one_line(message))
    }
}

/// serde and toml messages may span lines and speak Rust; one line, in the file's terms.
pub(crate) fn one_line(message: &str) -> String {
    message
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace("expected i64", "expected an integer")
}

fn backticked<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.split(prefix).nth(1)?;
    rest.split('`').next()
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    InlineTable(&'a InlineTable),
    Array(&'a Array),
    Tables(&'a ArrayOfTables),
    Scalar(&'a Value),
}

impl<'a> Node<'a> {
    fn of_item(i: &'a Item) -> Option<Node<'a>> {
        match i {
            Item::None => None,
            Item::Table(t) => Some(Node::Table(t)),
            Item::ArrayOfTables(a) => Some(Node::Tables(a)),
            Item::Value(v) => Some(Node::of_value(v)),
        }
    }

    fn of_value(v: &'a Value) -> Node<'a> {
        match v {
            Value::InlineTable(t) => Node::InlineTable(t),
            Value::Array(a) => Node::Array(a),
            v => Node::Scalar(v),
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Table(t) => t.span(),
            Node::InlineTable(t) => t.span(),
            Node::Array(a) => a.span(),
            Node::Tables(a) => a.span(),
            Node::Scalar(v) => v.span(),
        }
    }

    /// The child at `seg`, with the span of its key (for keyed children).
    fn child(self, seg: &Seg) -> Option<(Node<'a>, Option<Range<usize>>)> {
        match (self, seg) {
            (Node::Table(t), Seg::Key(k)) => {
                let (key, item) = t.get_key_value(k)?;
                Some((Node::of_item(item)?, key.span()))
            }
            (Node::InlineTable(t), Seg::Key(k)) => {
                let (key, item) = t.get_key_value(k)?;
                Some((Node::of_item(item)?, key.span()))
            }
            (Node::Array(a), Seg::Index(i)) => Some((Node::of_value(a.get(*i)?), None)),
            (Node::Tables(a), Seg::Index(i)) => Some((Node::Table(a.get(*i)?), None)),
            _ => None,
        }
    }

    fn children(self) -> Vec<(Seg, Node<'a>, Option<Range<usize>>)> {
        let mut out = Vec::new();
        match self {
            Node::Table(t) => {
                for (k, _) in t.iter() {
                    if let Some((n, ks)) = self.child(&Seg::Key(k.to_owned())) {
                        out.push((Seg::Key(k.to_owned()), n, ks));
                    }
                }
            }
            Node::InlineTable(t) => {
                for (k, _) in t.iter() {
                    if let Some((n, ks)) = self.child(&Seg::Key(k.to_owned())) {
                        out.push((Seg::Key(k.to_owned()), n, ks));
                    }
                }
            }
            Node::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    out.push((Seg::Index(i), Node::of_value(v), None));
                }
            }
            Node::Tables(a) => {
                for (i, t) in a.iter().enumerate() {
                    out.push((Seg::Index(i), Node::Table(t), None));
                }
            }
            Node::Scalar(_) => {}
        }
        out
    }
}

/// Span start of the value at `path`, or of the deepest part of `path` that is in the file.
pub(crate) fn locate(root: &Table, path: &Path) -> Option<usize> {
    let mut node = Node::Table(root);
    let mut best = None;
    for seg in &path.0 {
        let Some((next, key_span)) = node.child(seg) else {
            break;
        };
        node = next;
        best = next.span().or(key_span).map(|s| s.start).or(best);
    }
    best
}

/// Span start of the key at the end of `path`.
pub(crate) fn locate_key(root: &Table, path: &Path) -> Option<usize> {
    let (last, parent) = path.0.split_last()?;
    let mut node = Node::Table(root);
    for seg in parent {
        node = node.child(seg)?.0;
    }
    node.child(last)?.1.map(|s| s.start)
}

/// The path of the deepest key or value whose span contains `span.start`.
pub(crate) fn find_path(root: &Table, span: Range<usize>) -> Option<Path> {
    fn walk(node: Node<'_>, path: &Path, off: usize, best: &mut Option<Path>) {
        for (seg, child, key_span) in node.children() {
            let p = Path(path.0.iter().cloned().chain([seg]).collect());
            let hit = [key_span, child.span()]
                .into_iter()
                .flatten()
                .any(|s| s.contains(&off) || s.start == off);
            if hit && !matches!(best, Some(b) if b.0.len() >= p.0.len()) {
                *best = Some(p.clone());
            }
            walk(child, &p, off, best);
        }
    }
    let mut best = None;
    walk(Node::Table(root), &Path::root(), span.start, &mut best);
    best
}
