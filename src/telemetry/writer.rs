//! The daemon's log writer: lossy but never in the way. Log lines go into a bounded queue that
//! one thread drains to stderr; a line that finds the queue full (the reader of the pipe is
//! stalled) or that stderr refuses (the reader is gone: EPIPE) is dropped and counted, never
//! retried, never a panic. A request or the shutdown path therefore never waits on, or dies of,
//! whoever reads sk8's output (`sk8 serve | grep -m1 ready`, a restarting log collector, a
//! closed terminal).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// Lines the queue holds while the pipe is slow; past that, new lines are dropped.
const QUEUE_LINES: usize = 4096;

/// How long [`LogGuard`] waits at exit for queued lines to reach stderr.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Log lines dropped since start (queue full or stderr failed): `sk8_log_lines_dropped_total`.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped since start.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

fn drop_line() {
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

enum Message {
    Line(Vec<u8>),
    /// Answered once every line queued before it was written (or dropped).
    Flush(SyncSender<()>),
}

/// The `MakeWriter` for tracing: each event is one `write` of one formatted line.
#[derive(Clone)]
pub struct QueueWriter {
    queue: SyncSender<Message>,
}

impl Write for QueueWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        match self.queue.try_send(Message::Line(line.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => drop_line(),
        }
        // Always "written": an error here would only make tracing report it on stderr.
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QueueWriter {
    type Writer = QueueWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Flushes the queue (for at most [`FLUSH_TIMEOUT`]) when dropped: keep it until `main` ends,
/// so the last lines ("stopped") are not lost to the exit.
pub struct LogGuard {
    queue: SyncSender<Message>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let (done, wait) = sync_channel(1);
        if self.queue.try_send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(FLUSH_TIMEOUT);
        }
    }
}

/// Starts the thread that writes queued lines to `out`; returns the writer and its guard.
pub fn spawn(out: impl Write + Send + 'static) -> std::io::Result<(QueueWriter, LogGuard)> {
    let (queue, lines) = sync_channel(QUEUE_LINES);
    std::thread::Builder::new()
        .name("sk8-log".into())
        .spawn(move || drain(lines, out))?;
    Ok((
        QueueWriter {
            queue: queue.clone(),
        },
        LogGuard { queue },
    ))
}

fn drain(lines: Receiver<Message>, mut out: impl Write) {
    for message in lines {
        match message {
            Message::Line(line) => {
                if out.write_all(&line).is_err() {
                    drop_line();
                }
            }
            Message::Flush(done) => {
                let _ = out.flush();
                let _ = done.try_send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that refuses every write, as a pipe whose reader has gone.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_broken_sink_drops_and_counts_lines_without_failing_the_writer() {
        let before = dropped();
        let (mut writer, guard) = spawn(Broken).unwrap();
        for _ in 0..3 {
            assert_eq!(writer.write(b"a line\n").unwrap(), 7);
        }
        drop(guard);
        assert!(dropped() >= before + 3, "{} dropped", dropped() - before);
    }

    /// A sink that blocks forever, as a pipe whose reader stopped reading.
    struct Stalled(std::sync::Mutex<Receiver<()>>);

    impl Write for Stalled {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.lock().unwrap().recv();
            Ok(0)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_sink_fills_the_queue_then_drops_instead_of_blocking() {
        let (_never, stall) = sync_channel(0);
        let (mut writer, _guard) = spawn(Stalled(std::sync::Mutex::new(stall))).unwrap();
        let before = dropped();
        // The drain thread holds one line; the queue holds QUEUE_LINES more.
        for _ in 0..QUEUE_LINES + 10 {
            writer.write_all(b"x\n").unwrap();
        }
        assert!(dropped() >= before + 9, "{} dropped", dropped() - before);
    }
}
