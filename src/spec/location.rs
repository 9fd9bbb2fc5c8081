//! Where each key and value of a YAML document is: a path (`stages/train/params/seed`) → line and
//! column, built from yaml-rust2's marked events, so diagnostics can point into the file.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Path → (line, col) of the key and of the value at that path.
#[derive(Debug, Default, Clone)]
pub struct LocationIndex {
    keys: HashMap<String, (usize, usize)>,
    values: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Builder {
    index: LocationIndex,
    stack: Vec<Frame>,
}

fn join(path: &str, seg: &str) -> String {
    if path.is_empty() {
        seg.to_string()
    } else {
        format!("{path}/{seg}")
    }
}

impl Builder {
    /// The path of the node that starts now, consuming the parent's pending key slot.
    /// `None` when the node is a mapping key.
    fn next_path(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        let pos = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, index }) => {
                let p = join(path, &index.to_string());
                *index += 1;
                self.index.values.insert(p.clone(), pos);
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => {
                    let p = join(path, &k);
                    self.index.values.insert(p.clone(), pos);
                    Some(p)
                }
                None => {
                    let k = scalar.unwrap_or("?").to_string();
                    self.index.keys.insert(join(path, &k), pos);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) => {
                self.next_path(Some(&s), mark);
            }
            Event::Alias(_) => {
                self.next_path(Some("*alias"), mark);
            }
            Event::MappingStart(..) => {
                let path = self.next_path(None, mark).unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.next_path(None, mark).unwrap_or_default();
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl LocationIndex {
    /// Indexes `text`; a document that does not parse yields an empty index.
    pub fn build(text: &str) -> Self {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut b, false).is_err() {
            return b.index;
        }
        b.index
    }

    /// The value at `path`, else its key, else the nearest ancestor's.
    pub fn value(&self, path: &str) -> Option<(usize, usize)> {
        if let Some(v) = self.values.get(path).or_else(|| self.keys.get(path)) {
            return Some(*v);
        }
        // An ancestor's key says more than where its (block) value happens to start.
        let mut p = path.to_string();
        loop {
            if let Some(v) = self.keys.get(&p).or_else(|| self.values.get(&p)) {
                return Some(*v);
            }
            match p.rsplit_once('/') {
                Some((parent, _)) => p = parent.to_string(),
                None => return None,
            }
        }
    }

    /// Whether the document has a key at exactly `path`.
    pub fn has_key(&self, path: &str) -> bool {
        self.keys.contains_key(path)
    }

    /// The key at `path` (falls back like [`Self::value`]).
    pub fn key(&self, path: &str) -> Option<(usize, usize)> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_values() {
        let text = "name: x\nstages:\n  a:\n    kind: util.sum\n    inputs: {x: [b.table, c.table]}\n";
        let ix = LocationIndex::build(text);
        assert_eq!(ix.value("stages/a/kind"), Some((4, 11)));
        assert_eq!(ix.key("stages/a/kind"), Some((4, 5)));
        assert_eq!(ix.value("stages/a/inputs/x/1"), Some((5, 27)));
        assert_eq!(ix.value("stages/a/params/none"), Some((3, 3)));
    }
}
