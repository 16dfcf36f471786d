//! Finding an application's event log under a location and reading its lines as a stream.
//!
//! Spark names a log after the application and attempt (`Utils.nameForAppAndAttempt`: the app
//! id sanitized, lower-cased, `_<attempt>` appended):
//! - one file: `<name>[.<codec>][.inprogress]`;
//! - rolling (`spark.eventLog.rolling.enabled`, Spark 4's default): a directory
//!   `eventlog_v2_<name>/` of `events_<n>_<name>[.<codec>]` parts, read in the order of `n`,
//!   and an `appstatus_<name>[.inprogress]` marker.
//!
//! [`LineSplitter`] reads any `Read` in large chunks and hands out lines as borrowed slices
//! (memchr finds the newlines); a line longer than its bound is skipped as it streams by,
//! never held whole.

use std::io::{self, Read};

use tokio::runtime::Handle;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::codec::Codec;
use super::objects::{Entry, Objects, ObjectsError};

/// One file of an event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Key relative to the location.
    pub key: String,
    pub size: u64,
    pub codec: Option<Codec>,
}

/// An application's event log: its files in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    pub files: Vec<LogFile>,
    /// Spark had not finished the log (`.inprogress`).
    pub in_progress: bool,
    /// The codec a file names that sk8 cannot read (`lzf`), if any.
    pub unsupported_codec: Option<String>,
}

/// Spark's `Utils.sanitizeDirName`: the name a log is filed under.
pub fn sanitize(app_id: &str) -> String {
    app_id
        .chars()
        .map(|c| match c {
            ' ' | ':' | '/' => '-',
            '.' | '$' | '{' | '}' | '\'' | '"' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Finds the event log of `app_id` (its last attempt, if Spark numbered attempts).
pub async fn find(objects: &Objects, app_id: &str) -> Result<Option<EventLog>, ObjectsError> {
    let name = sanitize(app_id);
    // Spark 4 writes rolling logs by default: one precise listing finds them.
    let rolling = rolling_log(objects, &format!("eventlog_v2_{name}")).await?;
    if rolling.is_some() {
        return Ok(rolling);
    }
    let listing = objects.list_dir("").await?;
    let base = |key: &str| -> Option<String> { attempt_of(key, &name).map(|_| key.to_string()) };
    let mut dirs: Vec<String> = listing
        .dirs
        .iter()
        .filter_map(|dir| dir.strip_prefix("eventlog_v2_").and_then(base))
        .collect();
    dirs.sort_by_key(|dir| attempt_order(dir, &name));
    if let Some(dir) = dirs.last() {
        return rolling_log(objects, &format!("eventlog_v2_{dir}")).await;
    }
    let mut files: Vec<&Entry> = listing
        .objects
        .iter()
        .filter(|entry| attempt_of(strip_suffixes(&entry.key).0, &name).is_some())
        .collect();
    files.sort_by_key(|entry| attempt_order(strip_suffixes(&entry.key).0, &name));
    Ok(files.last().map(|entry| single_file(entry)))
}

/// The attempt suffix of a log name for `name` (`""` when none), or None for another app.
fn attempt_of<'a>(base: &'a str, name: &str) -> Option<&'a str> {
    let rest = base.strip_prefix(name)?;
    if rest.is_empty() {
        return Some("");
    }
    rest.strip_prefix('_')
}

/// Attempts sort numerically when they are numbers.
fn attempt_order(base: &str, name: &str) -> (u64, String) {
    let attempt = attempt_of(base, name).unwrap_or_default();
    (attempt.parse().unwrap_or(0), attempt.to_string())
}

/// `(name, codec suffix, in progress)` of a single-file log's key.
fn strip_suffixes(key: &str) -> (&str, Option<&str>, bool) {
    let (key, in_progress) = match key.strip_suffix(".inprogress") {
        Some(key) => (key, true),
        None => (key, false),
    };
    match key.rsplit_once('.') {
        Some((name, codec)) if ["zstd", "lz4", "snappy", "lzf"].contains(&codec) => {
            (name, Some(codec), in_progress)
        }
        _ => (key, None, in_progress),
    }
}

fn single_file(entry: &Entry) -> EventLog {
    let (_, codec, in_progress) = strip_suffixes(&entry.key);
    EventLog {
        files: vec![LogFile {
            key: entry.key.clone(),
            size: entry.size,
            codec: codec.and_then(Codec::from_suffix),
        }],
        in_progress,
        unsupported_codec: codec
            .filter(|c| Codec::from_suffix(c).is_none())
            .map(String::from),
    }
}

async fn rolling_log(objects: &Objects, dir: &str) -> Result<Option<EventLog>, ObjectsError> {
    let listing = objects.list_dir(dir).await?;
    let mut in_progress = false;
    let mut unsupported_codec = None;
    let mut parts: Vec<(u64, LogFile)> = Vec::new();
    for entry in &listing.objects {
        let file_name = entry.key.rsplit('/').next().unwrap_or_default();
        if let Some(status) = file_name.strip_prefix("appstatus_") {
            in_progress = status.ends_with(".inprogress");
            continue;
        }
        let Some(rest) = file_name.strip_prefix("events_") else {
            continue;
        };
        let Some((index, _)) = rest.split_once('_') else {
            continue;
        };
        let Ok(index) = index.parse::<u64>() else {
            continue;
        };
        let (_, codec, _) = strip_suffixes(rest);
        if let Some(codec) = codec.filter(|c| Codec::from_suffix(c).is_none()) {
            unsupported_codec = Some(codec.to_string());
        }
        let file = LogFile {
            key: entry.key.clone(),
            size: entry.size,
            codec: codec.and_then(Codec::from_suffix),
        };
        parts.push((index, file));
    }
    if parts.is_empty() {
        return Ok(None);
    }
    parts.sort_by_key(|(index, _)| *index);
    Ok(Some(EventLog {
        files: parts.into_iter().map(|(_, file)| file).collect(),
        in_progress,
        unsupported_codec,
    }))
}

/// Opens one file of a log, decompressed. A local file is read directly; a remote one streams
/// from the store through `runtime`. Blocking: call it from a blocking thread.
pub fn open(
    objects: &Objects,
    file: &LogFile,
    runtime: &Handle,
) -> io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = match objects.local_path(&file.key) {
        Some(path) => Box::new(std::fs::File::open(path)?),
        None => {
            let stream = runtime
                .block_on(objects.get(&file.key))
                .map_err(io::Error::other)?;
            let stream = futures::TryStreamExt::map_err(stream, io::Error::other);
            Box::new(SyncIoBridge::new_with_handle(
                StreamReader::new(stream),
                runtime.clone(),
            ))
        }
    };
    match file.codec {
        Some(codec) => codec.reader(raw),
        None => Ok(raw),
    }
}

/// What [`LineSplitter`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineStats {
    pub bytes: u64,
    pub lines: u64,
    pub oversized: u64,
}

/// Splits a stream into lines of at most `max_line` bytes.
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
    pub stats: LineStats,
}

/// How much the buffer holds to begin with.
const CHUNK: usize = 1 << 20;
/// How much is asked of the reader at a time: a decompressor that fails (a truncated frame)
/// loses what it decoded in that call, so calls are kept small.
const READ: usize = 64 << 10;

impl LineSplitter {
    pub fn new(max_line: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::with_capacity(CHUNK),
            max_line,
            stats: LineStats::default(),
        }
    }

    /// Calls `line` for each line of `reader` (without its newline; a last line without one
    /// too), and `oversized` with the first bytes of each line longer than the bound.
    pub fn split(
        &mut self,
        reader: &mut dyn Read,
        line: &mut dyn FnMut(&[u8]),
        oversized: &mut dyn FnMut(&[u8]),
    ) -> io::Result<()> {
        let mut skipping = false;
        let mut start = 0;
        let mut end = 0;
        loop {
            if self.buf.len() < end + READ {
                self.buf.resize((end + READ).max(CHUNK), 0);
            }
            let n = match reader.read(&mut self.buf[end..end + READ]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.stats.bytes += n as u64;
            let mut scan = end;
            end += n;
            while let Some(at) = memchr::memchr(b'\n', &self.buf[scan..end]) {
                let stop = scan + at;
                if skipping {
                    skipping = false;
                } else {
                    self.stats.lines += 1;
                    line(trim_cr(&self.buf[start..stop]));
                }
                start = stop + 1;
                scan = start;
            }
            if !skipping && end - start > self.max_line {
                self.stats.oversized += 1;
                oversized(&self.buf[start..start + 256.min(end - start)]);
                skipping = true;
            }
            if skipping {
                start = end;
            }
            // Keep the unfinished line at the front; the buffer only grows to hold a line.
            self.buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end > start && !skipping {
            self.stats.lines += 1;
            line(trim_cr(&self.buf[start..end]));
        }
        self.buf.truncate(CHUNK);
        self.buf.shrink_to(CHUNK);
        Ok(())
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], max_line: usize) -> (Vec<String>, Vec<String>, LineStats) {
        let mut splitter = LineSplitter::new(max_line);
        let (mut lines, mut oversized) = (Vec::new(), Vec::new());
        splitter
            .split(
                &mut &input[..],
                &mut |l| lines.push(String::from_utf8_lossy(l).into_owned()),
                &mut |l| oversized.push(String::from_utf8_lossy(&l[..5]).into_owned()),
            )
            .unwrap();
        (lines, oversized, splitter.stats)
    }

    #[test]
    fn splits_lines_and_skips_the_oversized() {
        let (lines, _, stats) = split(b"a\nbb\r\n\nccc", 10);
        assert_eq!(lines, ["a", "bb", "", "ccc"]);
        assert_eq!(stats.lines, 4);

        let long = format!("x\n{{\"Event\"{}\ny\n", "z".repeat(3 * CHUNK));
        let (lines, oversized, stats) = split(long.as_bytes(), CHUNK);
        assert_eq!(lines, ["x", "y"]);
        assert_eq!(oversized, ["{\"Eve"]);
        assert_eq!(stats.oversized, 1);
        assert_eq!(stats.bytes, long.len() as u64);
    }

    #[test]
    fn names_follow_spark() {
        assert_eq!(sanitize("App-1.x:Y"), "app-1_x-y");
        assert_eq!(
            strip_suffixes("local-1.zstd.inprogress"),
            ("local-1", Some("zstd"), true)
        );
        assert_eq!(strip_suffixes("local-1_2"), ("local-1_2", None, false));
        assert_eq!(attempt_of("local-1_2", "local-1"), Some("2"));
        assert_eq!(attempt_of("local-12", "local-1"), None);
    }
}
