//! Watch: the bounded event history (a resourceVersion older than it gets `410 Expired`, as
//! kube-apiserver answers after etcd compaction) and the per-request stream that filters events
//! by kind, namespace and selectors, adds bookmarks and ends on `timeoutSeconds`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::selectors::Selector;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change. `previous` lets a selector-filtered watch turn a label change into
/// ADDED or DELETED, as the real watch cache does.
#[derive(Debug)]
pub struct Event {
    /// Index of the kind in [`crate::resources::KINDS`].
    pub kind: usize,
    pub namespace: String,
    pub rv: u64,
    pub event_type: EventType,
    pub object: Value,
    pub previous: Option<Value>,
}

/// The last `limit` events; `compacted` is the newest resourceVersion already dropped.
#[derive(Debug)]
pub struct History {
    events: VecDeque<Arc<Event>>,
    limit: usize,
    compacted: u64,
}

impl History {
    pub fn new(limit: usize) -> Self {
        History {
            events: VecDeque::new(),
            limit: limit.max(1),
            compacted: 0,
        }
    }

    pub fn push(&mut self, event: Arc<Event>) {
        if self.events.len() == self.limit
            && let Some(dropped) = self.events.pop_front()
        {
            self.compacted = dropped.rv;
        }
        self.events.push_back(event);
    }

    /// Events after `rv`, or the 410 a client gets when some of them were dropped.
    pub fn since(&self, rv: u64) -> Result<Vec<Arc<Event>>, ApiError> {
        if rv < self.compacted {
            let oldest = self.compacted + 1;
            return Err(ApiError::expired(format!(
                "too old resource version: {rv} ({oldest})"
            )));
        }
        Ok(self.events.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Drops every event up to `rv`, as etcd compaction does: a watch resuming from before it
    /// gets 410 Gone.
    pub fn compact_to(&mut self, rv: u64) {
        self.events.retain(|e| e.rv > rv);
        self.compacted = self.compacted.max(rv);
    }

    /// The oldest resourceVersion still consistent (continue tokens older than it expire).
    pub fn compacted(&self) -> u64 {
        self.compacted
    }
}

/// What a watch request selects.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    pub kind: usize,
    pub namespace: Option<String>,
    pub selector: Selector,
}

impl WatchFilter {
    /// The event this watcher sees, if any: objects moving into the selector are ADDED and
    /// objects moving out are DELETED.
    pub fn translate(&self, event: &Event) -> Option<(EventType, Value)> {
        if event.kind != self.kind
            || self
                .namespace
                .as_ref()
                .is_some_and(|n| *n != event.namespace)
        {
            return None;
        }
        let now = self.selector.matches(&event.object);
        let before = event
            .previous
            .as_ref()
            .is_some_and(|p| self.selector.matches(p));
        let event_type = match (event.event_type, before, now) {
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            (other, _, true) if other != EventType::Modified => other,
            _ => return None,
        };
        Some((event_type, event.object.clone()))
    }
}

/// One line of a watch response, before encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    Event(EventType, Value),
    /// `initial_end` marks the end of `sendInitialEvents` (annotation `k8s.io/initial-events-end`).
    Bookmark {
        rv: u64,
        initial_end: bool,
    },
    Error(ApiError),
}

/// How long a watch lasts and whether it gets bookmarks.
#[derive(Debug, Clone, Default)]
pub struct WatchTiming {
    pub timeout: Option<Duration>,
    pub bookmark_every: Option<Duration>,
}

/// A live watch: queued items first (initial state or history), then broadcast events.
pub struct WatchStream {
    queued: VecDeque<WatchItem>,
    rx: broadcast::Receiver<Arc<Event>>,
    filter: WatchFilter,
    last_rv: u64,
    bookmarks: Option<Interval>,
    deadline: Option<Instant>,
    shutdown: CancellationToken,
    finished: bool,
}

impl WatchStream {
    pub fn new(
        queued: VecDeque<WatchItem>,
        rx: broadcast::Receiver<Arc<Event>>,
        filter: WatchFilter,
        start_rv: u64,
        timing: &WatchTiming,
        shutdown: CancellationToken,
    ) -> Self {
        let bookmarks = timing
            .bookmark_every
            .map(|every| tokio::time::interval_at(Instant::now() + every, every));
        WatchStream {
            queued,
            rx,
            filter,
            last_rv: start_rv,
            bookmarks,
            deadline: timing.timeout.map(|t| Instant::now() + t),
            shutdown,
            finished: false,
        }
    }

    /// The next line, or None when the watch is over (timeout, shutdown, error sent).
    pub async fn next(&mut self) -> Option<WatchItem> {
        if let Some(item) = self.queued.pop_front() {
            return Some(item);
        }
        while !self.finished {
            let deadline = self.deadline;
            let bookmarks = &mut self.bookmarks;
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = sleep_until(deadline) => return None,
                _ = tick(bookmarks) => {
                    return Some(WatchItem::Bookmark { rv: self.last_rv, initial_end: false });
                }
                received = self.rx.recv() => match received {
                    Ok(event) => {
                        self.last_rv = event.rv;
                        if let Some((event_type, object)) = self.filter.translate(&event) {
                            return Some(WatchItem::Event(event_type, object));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // A watcher too slow for the broadcast buffer is cut off, like the
                        // real cacher does; the client re-lists.
                        self.finished = true;
                        let gone = ApiError::expired("the watch fell too far behind; start a new one");
                        return Some(WatchItem::Error(gone));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
        None
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selectors::LabelSelector;
    use serde_json::json;

    fn event(rv: u64, event_type: EventType, labels: Value, previous: Option<Value>) -> Arc<Event> {
        let object = json!({"metadata": {"name": "x", "labels": labels}});
        let previous = previous.map(|labels| json!({"metadata": {"name": "x", "labels": labels}}));
        Arc::new(Event {
            kind: 0,
            namespace: "ns".into(),
            rv,
            event_type,
            object,
            previous,
        })
    }

    #[test]
    fn history_keeps_the_newest_events_and_expires_older_versions() {
        let mut history = History::new(3);
        for rv in 1..=5 {
            history.push(event(rv, EventType::Added, json!({}), None));
        }
        let since: Vec<u64> = history.since(2).unwrap().iter().map(|e| e.rv).collect();
        assert_eq!(since, [3, 4, 5]);
        assert!(history.since(5).unwrap().is_empty());
        let err = history.since(1).unwrap_err();
        assert_eq!((err.code, err.reason), (410, "Expired"));
        assert_eq!(err.message, "too old resource version: 1 (3)");
    }

    #[test]
    fn label_changes_become_added_and_deleted() {
        let filter = WatchFilter {
            kind: 0,
            namespace: Some("ns".into()),
            selector: Selector {
                labels: LabelSelector::parse("app=pi").unwrap(),
                ..Default::default()
            },
        };
        let seen = |e: Arc<Event>| filter.translate(&e).map(|(t, _)| t);
        let pi = json!({"app": "pi"});
        let other = json!({"app": "other"});
        assert_eq!(
            seen(event(1, EventType::Added, pi.clone(), None)),
            Some(EventType::Added)
        );
        assert_eq!(seen(event(2, EventType::Added, other.clone(), None)), None);
        let modified = |labels: &Value, previous: &Value| {
            seen(event(
                3,
                EventType::Modified,
                labels.clone(),
                Some(previous.clone()),
            ))
        };
        assert_eq!(modified(&pi, &other), Some(EventType::Added));
        assert_eq!(modified(&other, &pi), Some(EventType::Deleted));
        assert_eq!(modified(&pi, &pi), Some(EventType::Modified));
        assert_eq!(modified(&other, &other), None);
    }

    #[tokio::test]
    async fn stream_sends_queued_items_events_bookmarks_then_times_out() {
        let (tx, rx) = broadcast::channel(16);
        let filter = WatchFilter {
            kind: 0,
            namespace: None,
            selector: Selector::default(),
        };
        let timing = WatchTiming {
            timeout: Some(Duration::from_millis(300)),
            bookmark_every: Some(Duration::from_millis(100)),
        };
        let queued = VecDeque::from([WatchItem::Bookmark {
            rv: 1,
            initial_end: true,
        }]);
        let mut watch = WatchStream::new(queued, rx, filter, 1, &timing, CancellationToken::new());
        assert_eq!(
            watch.next().await,
            Some(WatchItem::Bookmark {
                rv: 1,
                initial_end: true
            })
        );
        tx.send(event(2, EventType::Added, json!({}), None))
            .unwrap();
        assert!(matches!(
            watch.next().await,
            Some(WatchItem::Event(EventType::Added, _))
        ));
        assert_eq!(
            watch.next().await,
            Some(WatchItem::Bookmark {
                rv: 2,
                initial_end: false
            })
        );
        let mut rest = Vec::new();
        while let Some(item) = watch.next().await {
            rest.push(item);
        }
        assert!(
            rest.iter().all(|i| matches!(i, WatchItem::Bookmark { .. })),
            "{rest:?}"
        );
    }
}
