//! The node tree, built from saphyr-parser's events without recursion: an explicit stack of
//! open collections, bounded in depth and in total nodes.

use super::{join_key, Error, MAX_DEPTH, MAX_NODES};
use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;

/// A position in the text: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub mark: Mark,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar and whether it was plain (unquoted, so subject to typing: `1`, `true`,
    /// `null`) or quoted / a block scalar (always a string).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in document order; keys are scalars and unique.
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn count(&self) -> usize {
        // Iterative: an anchored subtree may be as deep as MAX_DEPTH, never more.
        let mut n = 0;
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            n += 1;
            match &node.value {
                Value::Scalar { .. } => {}
                Value::Seq(items) => stack.extend(items.iter()),
                Value::Map(entries) => {
                    for (k, v) in entries {
                        stack.push(k);
                        stack.push(v);
                    }
                }
            }
        }
        n
    }

    /// The scalar text of a key node (keys are always scalars in a built tree).
    pub fn key_text(&self) -> &str {
        match &self.value {
            Value::Scalar { text, .. } => text,
            _ => "",
        }
    }

    /// The node at a dotted/indexed `path` as [`super::Error::path`] spells it, for pointing
    /// at a line when validation (after deserialization) refuses a field.
    pub fn find(&self, path: &str) -> Option<&Node> {
        let mut node = self;
        let mut rest = path;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']')?;
                let i: usize = r[..end].parse().ok()?;
                node = match &node.value {
                    Value::Seq(items) => items.get(i)?,
                    _ => return None,
                };
                rest = &r[end + 1..];
                continue;
            }
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let (key, after) = if let Some(q) = r.strip_prefix('"') {
                // A quoted key: Rust's {:?} escaping; find the closing quote.
                let mut end = None;
                let mut esc = false;
                for (i, c) in q.char_indices() {
                    match c {
                        '\\' if !esc => esc = true,
                        '"' if !esc => {
                            end = Some(i);
                            break;
                        }
                        _ => esc = false,
                    }
                }
                let end = end?;
                (unescape(&q[..end]), &q[end + 1..])
            } else {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                (r[..end].to_string(), &r[end..])
            };
            node = match &node.value {
                Value::Map(entries) => &entries.iter().find(|(k, _)| k.key_text() == key)?.1,
                _ => return None,
            };
            rest = after;
        }
        Some(node)
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            out.push(match c {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                '0' => '\0',
                c => c,
            });
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// An open collection while its events arrive.
enum Frame {
    Seq {
        mark: Mark,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        mark: Mark,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    /// Whether an anchor or alias was charged (for the error's wording).
    aliased: bool,
    root: Option<Node>,
}

impl Builder {
    /// Where the builder is, as a field path, for errors found while parsing.
    fn path(&self) -> String {
        let mut p = String::new();
        for f in &self.stack {
            match f {
                Frame::Seq { items, .. } => p.push_str(&format!("[{}]", items.len())),
                Frame::Map { key: Some(k), .. } => p = join_key(&p, k.key_text()),
                Frame::Map { .. } => {}
            }
        }
        p
    }

    fn err(&self, mark: Mark, msg: impl Into<String>) -> Error {
        Error {
            path: self.path(),
            mark: Some(mark),
            message: msg.into(),
        }
    }

    fn charge(&mut self, n: usize, mark: Mark, alias: bool) -> Result<(), Error> {
        self.nodes = self.nodes.saturating_add(n);
        self.aliased |= alias;
        if self.nodes > MAX_NODES {
            let why = if self.aliased {
                "counting each alias as the copy it stands for; this looks like an alias bomb"
            } else {
                "a policy is far smaller"
            };
            return Err(self.err(
                mark,
                format!("the document has more than {MAX_NODES} values ({why})"),
            ));
        }
        Ok(())
    }

    fn open(&mut self, f: Frame, mark: Mark) -> Result<(), Error> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.err(
                mark,
                format!("nested deeper than {MAX_DEPTH} levels; a policy needs far fewer"),
            ));
        }
        self.charge(1, mark, false)?;
        self.stack.push(f);
        Ok(())
    }

    /// Places a finished node into the open collection (or as the root).
    fn push(&mut self, node: Node, anchor: usize) -> Result<(), Error> {
        if anchor != 0 {
            let n = node.count();
            self.charge(n, node.mark, true)?;
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some(k) => {
                    entries.push((k, node));
                    Ok(())
                }
                None => {
                    if !matches!(node.value, Value::Scalar { .. }) {
                        return Err(self.err(
                            node.mark,
                            "a mapping key must be a plain value, not a list or mapping",
                        ));
                    }
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(node);
                    }
                    Ok(())
                }
            },
        }
    }
}

/// A tag as it is written (`!!str`, `!evil`).
fn tag_name(t: &saphyr_parser::Tag) -> String {
    match t.handle.as_str() {
        "tag:yaml.org,2002:" => format!("!!{}", t.suffix),
        h => format!("{h}{}", t.suffix),
    }
}

fn mark_of(m: saphyr_parser::Marker) -> Mark {
    Mark {
        line: m.line(),
        column: m.col() + 1,
    }
}

/// Keys must be unique: found by sorting, so a map of many keys costs n log n. Returns the
/// index of the later of two equal keys, and the line of the earlier.
fn duplicate(entries: &[(Node, Node)]) -> Option<(usize, usize)> {
    let mut idx: Vec<usize> = (0..entries.len()).collect();
    idx.sort_by(|a, b| {
        entries[*a]
            .0
            .key_text()
            .cmp(entries[*b].0.key_text())
            .then(a.cmp(b))
    });
    idx.windows(2)
        .find(|w| entries[w[0]].0.key_text() == entries[w[1]].0.key_text())
        .map(|w| (w[1], entries[w[0]].0.mark.line))
}

pub fn build(text: &str) -> Result<Node, Error> {
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        aliased: false,
        root: None,
    };
    let mut documents = 0;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| {
            let m = mark_of(*e.marker());
            match e.info() {
                // The parser's bound on flow collections ([ and {), met before ours when it
                // scans ahead for a key.
                "recursion limit exceeded" => b.err(
                    m,
                    "nested deeper than 255 levels of [ ] and { }; a policy needs far fewer",
                ),
                info => b.err(m, format!("not valid YAML: {info}")),
            }
        })?;
        let mark = mark_of(span.start);
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Error {
                        path: String::new(),
                        mark: Some(mark),
                        message: "a second YAML document; the policy is one document".into(),
                    });
                }
            }
            Event::Alias(id) => {
                let Some(node) = b.anchors.get(&id).cloned() else {
                    return Err(b.err(mark, "an alias to an unknown anchor"));
                };
                b.charge(node.count(), mark, true)?;
                b.push(node, 0)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(t) = tag {
                    return Err(b.err(
                        mark,
                        format!(
                            "YAML tags are not accepted (found {}); write the plain value",
                            tag_name(&t)
                        ),
                    ));
                }
                b.charge(1, mark, false)?;
                let plain = matches!(style, ScalarStyle::Plain);
                b.push(
                    Node {
                        mark,
                        value: Value::Scalar {
                            text: text.into_owned(),
                            plain,
                        },
                    },
                    anchor,
                )?;
            }
            Event::SequenceStart(_, Some(t)) | Event::MappingStart(_, Some(t)) => {
                return Err(b.err(
                    mark,
                    format!("YAML tags are not accepted (found {})", tag_name(&t)),
                ));
            }
            Event::SequenceStart(anchor, _) => b.open(
                Frame::Seq {
                    mark,
                    anchor,
                    items: Vec::new(),
                },
                mark,
            )?,
            Event::MappingStart(anchor, _) => b.open(
                Frame::Map {
                    mark,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                },
                mark,
            )?,
            Event::SequenceEnd | Event::MappingEnd => {
                let node_anchor = match b.stack.pop() {
                    Some(Frame::Seq {
                        mark,
                        anchor,
                        items,
                        ..
                    }) => (
                        Node {
                            mark,
                            value: Value::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        mark,
                        anchor,
                        entries,
                        ..
                    }) => {
                        if let Some((i, first_line)) = duplicate(&entries) {
                            let k = &entries[i].0;
                            return Err(Error {
                                path: join_key(&b.path(), k.key_text()),
                                mark: Some(k.mark),
                                message: format!(
                                    "duplicate key {:?} (first at line {first_line}); a key may \
                                     appear once",
                                    k.key_text()
                                ),
                            });
                        }
                        (
                            Node {
                                mark,
                                value: Value::Map(entries),
                            },
                            anchor,
                        )
                    }
                    None => return Err(b.err(mark, "unbalanced collection end")),
                };
                b.push(node_anchor.0, node_anchor.1)?;
            }
        }
    }
    b.root.ok_or_else(|| Error {
        path: String::new(),
        mark: None,
        message: "the document is empty".into(),
    })
}
