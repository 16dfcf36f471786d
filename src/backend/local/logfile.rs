//! Reading a local attempt's driver log: the failure a user should see, the Spark UI address,
//! and streaming it (following while the attempt runs).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::super::LogStream;

const TAIL_BYTES: u64 = 64 * 1024;
const HEAD_BYTES: usize = 512 * 1024;
const MAX_REASON: usize = 500;
const CHUNK: usize = 64 * 1024;
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The last error line of a log: a Python exception (`ValueError: boom`) or a JVM one
/// (`Exception in thread "main" java.lang…`), whichever comes last.
pub fn failure_line(log: &Path) -> Option<String> {
    let tail = read_tail(log, TAIL_BYTES)?;
    tail.lines()
        .rev()
        .map(str::trim_end)
        .find(|line| is_error_line(line))
        .map(|line| truncate(line.trim(), MAX_REASON))
}

fn is_error_line(line: &str) -> bool {
    if line.starts_with(char::is_whitespace) || is_spark_log_line(line) {
        return false;
    }
    if line.starts_with("Exception in thread") {
        return true;
    }
    // `pkg.module.SomeError: message` or `SomeException` alone.
    let head = line.split(':').next().unwrap_or_default();
    let is_name = !head.is_empty()
        && !head.contains(' ')
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    is_name && (head.ends_with("Error") || head.ends_with("Exception"))
}

/// Spark's own log4j lines (`26/11/25 06:21:07 INFO …`) mention exceptions they handled;
/// they are not the application's failure.
fn is_spark_log_line(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 17 && b[2] == b'/' && b[5] == b'/' && b[8] == b' ' && b[11] == b':'
}

/// The Spark UI address a local driver announces, if it has yet.
pub fn spark_ui_url(log: &Path, host: &str) -> Option<String> {
    let mut file = std::fs::File::open(log).ok()?;
    let mut head = vec![0; HEAD_BYTES];
    let n = file.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    let marker = "Successfully started service 'SparkUI' on port ";
    let port: u16 = text
        .lines()
        .find_map(|line| line.split_once(marker))?
        .1
        .trim_end_matches('.')
        .trim()
        .parse()
        .ok()?;
    Some(format!("http://{host}:{port}"))
}

/// The Spark application id, from the line where Spark announces its event log
/// (`Logging events to file:/…/eventlog_v2_local-1796448131550/events_1_….zstd`, or
/// `…/local-1796448131550.zstd.inprogress` for a single-file log). Local mode ignores
/// `spark.app.id`, so this is where sk8 learns it.
pub fn app_id(log: &Path) -> Option<String> {
    let mut file = std::fs::File::open(log).ok()?;
    let mut head = vec![0; HEAD_BYTES];
    let n = file.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    let marker = "Logging events to ";
    let path = text
        .lines()
        .find_map(|line| line.split_once(marker))?
        .1
        .trim();
    app_id_of(path)
}

fn app_id_of(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    if let Some(rolling) = segments.iter().find_map(|s| s.strip_prefix("eventlog_v2_")) {
        return Some(rolling.to_owned());
    }
    let mut name = segments.last()?.trim_end_matches(".inprogress");
    for codec in [".zstd", ".lz4", ".lzf", ".snappy"] {
        name = name.trim_end_matches(codec);
    }
    (!name.is_empty()).then(|| name.to_owned())
}

fn read_tail(path: &Path, bytes: u64) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(bytes))).ok()?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Streams a log file from the start; with `follow`, keeps reading new lines until
/// `still_running` says the writer is gone and the end is reached.
pub fn stream(
    path: PathBuf,
    follow: bool,
    still_running: impl Fn() -> bool + Send + Sync + 'static,
) -> LogStream {
    let still_running = std::sync::Arc::new(still_running);
    Box::pin(futures::stream::unfold(Some((path, 0u64)), move |state| {
        let still_running = still_running.clone();
        async move {
            let (path, mut offset) = state?;
            loop {
                // Liveness is read before the file so that bytes written just before the
                // writer exits are still picked up by this read.
                let alive = follow && still_running();
                match read_chunk(&path, offset).await {
                    Ok(chunk) if !chunk.is_empty() => {
                        offset += chunk.len() as u64;
                        return Some((Ok(chunk), Some((path, offset))));
                    }
                    Ok(_) if alive => tokio::time::sleep(FOLLOW_POLL).await,
                    Ok(_) => return None,
                    Err(e) => return Some((Err(e), None)),
                }
            }
        }
    }))
}

async fn read_chunk(path: &Path, offset: u64) -> std::io::Result<Bytes> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0; CHUNK];
        let n = file.read(&mut buf)?;
        buf.truncate(n);
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn finds_the_python_exception_not_spark_chatter() {
        let log = log_with(
            "26/11/25 06:21:07 INFO SparkContext: Running Spark\n\
             Traceback (most recent call last):\n  File \"/x.py\", line 3, in <module>\n\
             \x20   raise ValueError(\"boom: bad input\")\nValueError: boom: bad input\n\
             26/11/25 06:21:15 INFO ShutdownHookManager: Shutdown hook called\n",
        );
        assert_eq!(
            failure_line(log.path()).as_deref(),
            Some("ValueError: boom: bad input")
        );
    }

    #[test]
    fn finds_a_jvm_exception() {
        let log = log_with(
            "Exception in thread \"main\" java.lang.ClassNotFoundException: com.x.Y\n\tat a.b\n",
        );
        assert!(
            failure_line(log.path())
                .unwrap()
                .contains("ClassNotFoundException")
        );
    }

    #[test]
    fn reads_the_application_id_of_rolling_and_single_file_logs() {
        let log = log_with(
            "26/12/05 05:22:12 INFO RollingEventLogFilesWriter: Logging events to \
             file:/tmp/ev/eventlog_v2_local-1796448131550/events_1_local-1796448131550.zstd\n",
        );
        assert_eq!(app_id(log.path()).as_deref(), Some("local-1796448131550"));
        assert_eq!(
            app_id_of("file:/tmp/ev/local-17.zstd.inprogress").as_deref(),
            Some("local-17")
        );
    }

    #[test]
    fn reads_the_ui_port() {
        let log = log_with(
            "26/11/25 06:21:08 INFO Utils: Successfully started service 'SparkUI' on port 4041.\n",
        );
        assert_eq!(
            spark_ui_url(log.path(), "127.0.0.1").as_deref(),
            Some("http://127.0.0.1:4041")
        );
    }
}
