//! A minimal YAML tree that remembers the line of every node, so that every error can point at the line a person
//! has to fix. Only what sync rules need: scalars, sequences, mappings; anchors/aliases and multiple documents are
//! refused rather than half-supported.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::RulesError;

/// Deeper nesting than this is never a sync rules file; the limit also keeps dropping the tree off the recursion
/// path of hostile input.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// The text and whether it was written plain (unquoted, not a block), which is when `null`/`~`/empty mean null.
    Scalar(String, bool),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    /// 1-based line in the source text.
    pub line: usize,
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s, true) if matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Scalar(..) if self.is_null() => "null",
            Kind::Scalar(..) => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

enum Frame {
    Seq(Vec<Node>, usize),
    Map(Vec<Node>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    last_line: usize,
    error: Option<RulesError>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(RulesError::new(line, message));
        }
    }

    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Frame::Seq(items, _)) | Some(Frame::Map(items, _)) => items.push(node),
            None => self.root = Some(node),
        }
    }

    fn open(&mut self, frame: Frame, line: usize) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(line, "YAML nesting is too deep");
            return;
        }
        self.stack.push(frame);
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line().max(1);
        self.handle(ev, line);
        self.last_line = line;
    }
}

impl Builder {
    /// Handles one event; `self.last_line` still holds the line of the event before it.
    fn handle(&mut self, ev: Event, line: usize) {
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(line, "only one YAML document is allowed");
                }
            }
            Event::Alias(_) => self.fail(line, "YAML aliases are not supported"),
            Event::Scalar(value, style, anchor, _) => {
                if anchor != 0 {
                    return self.fail(line, "YAML anchors are not supported");
                }
                let plain = style == TScalarStyle::Plain;
                // An empty plain scalar (`key:` or `-` alone) is marked at the next token, often lines later; the
                // line of the event before it (its key or dash) is where a person looks.
                let line = if plain && value.is_empty() { self.last_line.clamp(1, line) } else { line };
                self.push_value(Node { kind: Kind::Scalar(value, plain), line });
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) if anchor != 0 => {
                // A block collection is marked at its first entry; the anchor sits on the line before, after its key.
                self.fail(self.last_line.clamp(1, line), "YAML anchors are not supported")
            }
            Event::SequenceStart(..) => self.open(Frame::Seq(Vec::new(), line), line),
            Event::MappingStart(..) => self.open(Frame::Map(Vec::new(), line), line),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(items, start)) => self.push_value(Node { kind: Kind::Seq(items), line: start }),
                Some(Frame::Map(items, start)) => {
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    self.push_value(Node { kind: Kind::Map(pairs), line: start });
                }
                None => self.fail(line, "malformed YAML"),
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// Parses `text` into one document's tree; `None` for an empty document.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, RulesError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        if let Some(err) = builder.error {
            return Err(err);
        }
        return Err(RulesError::new(e.marker().line().max(1), format!("invalid YAML: {}", e.info())));
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root)
}
