//! Where each field of a YAML (or JSON) manifest is written, so that an error the daemon
//! reports about a field's JSON path (`driver.memory`, `args[0]`, `sparkConf.spark.master`)
//! points at the user's line and column, not at the JSON the CLI sent.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, Span};

/// A 1-based line and column.
pub type Position = (usize, usize);

/// A node being read: a mapping (with the key whose value comes next) or a sequence (with the
/// index of its next item).
enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

/// Field path → where its key (or, for a list item, the item) starts. Unreadable YAML gives
/// what was read before the error: the daemon's messages then carry no position.
pub fn positions(text: &str) -> HashMap<String, Position> {
    let mut found = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        match event {
            Event::Scalar(value, ..) => scalar(&mut stack, &mut found, &value, &span),
            Event::Alias(_) => {
                node_path(&mut stack, &mut found, &span);
            }
            Event::MappingStart(..) => {
                let path = node_path(&mut stack, &mut found, &span);
                stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = node_path(&mut stack, &mut found, &span);
                stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    found
}

/// A scalar is a mapping's key (its path is recorded) or a value.
fn scalar(stack: &mut [Frame], found: &mut HashMap<String, Position>, value: &str, span: &Span) {
    if let Some(Frame::Map {
        path,
        key: key @ None,
    }) = stack.last_mut()
    {
        let full = join(path, value);
        found.entry(full.clone()).or_insert_with(|| position(span));
        *key = Some(full);
    } else {
        node_path(stack, found, span);
    }
}

/// The path of a value node, consuming its parent's pending key or next index.
fn node_path(stack: &mut [Frame], found: &mut HashMap<String, Position>, span: &Span) -> String {
    match stack.last_mut() {
        Some(Frame::Map { key, .. }) => key.take().unwrap_or_default(),
        Some(Frame::Seq { path, next }) => {
            let item = format!("{path}[{next}]");
            *next += 1;
            found.entry(item.clone()).or_insert_with(|| position(span));
            item
        }
        None => String::new(),
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn position(span: &Span) -> Position {
    (span.start.line(), span.start.col() + 1)
}

/// Where `field` is written, or else its nearest written parent (a missing field is reported
/// where its parent is).
pub fn locate(found: &HashMap<String, Position>, field: &str) -> Option<Position> {
    let mut candidate = field;
    loop {
        if let Some(position) = found.get(candidate) {
            return Some(*position);
        }
        let cut = candidate.rfind(['.', '['])?;
        candidate = &candidate[..cut];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_map_to_their_lines_and_columns() {
        let text = "team: a\nenv: b\ndriver:\n  memory: lots\nsparkConf:\n  spark.master: x\n\
                    args: [one, two]\ndeps:\n  pyFiles:\n    - a.zip\n    - b.zip\n";
        let found = positions(text);
        assert_eq!(found["team"], (1, 1));
        assert_eq!(found["driver.memory"], (4, 3));
        assert_eq!(found["sparkConf.spark.master"], (6, 3));
        assert_eq!(found["args[1]"], (7, 13));
        assert_eq!(found["deps.pyFiles[1]"], (11, 7));
        assert_eq!(locate(&found, "driver.cores"), Some((3, 1)));
        assert_eq!(locate(&found, "retry.maxAttempts"), None);
    }

    #[test]
    fn json_is_yaml_too() {
        let found = positions("{\"team\": \"a\",\n \"driver\": {\"memory\": \"x\"}}");
        assert_eq!(found["driver.memory"], (2, 13));
    }
}
