//! The `metrics` recorder that feeds OTLP: every `metrics::counter!`/`gauge!`/`histogram!` in
//! sk8 reaches an OpenTelemetry instrument of the same name, labels as attributes, beside the
//! Prometheus recorder (both behind a fanout), so `/metrics` and the collector see the same
//! numbers. Handles are cached per key: a hot path costs one map read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

/// Bucket boundaries of one histogram, by name.
pub type Buckets = fn(&str) -> &'static [f64];

pub struct OtelRecorder {
    meter: Meter,
    buckets: Buckets,
    descriptions: RwLock<HashMap<String, String>>,
    counters: RwLock<HashMap<Key, Arc<OtelCounter>>>,
    gauges: RwLock<HashMap<Key, Arc<OtelGauge>>>,
    histograms: RwLock<HashMap<Key, Arc<OtelHistogram>>>,
}

impl OtelRecorder {
    pub fn new(meter: Meter, buckets: Buckets) -> Self {
        OtelRecorder {
            meter,
            buckets,
            descriptions: RwLock::default(),
            counters: RwLock::default(),
            gauges: RwLock::default(),
            histograms: RwLock::default(),
        }
    }

    fn describe(&self, key: KeyName, description: SharedString) {
        write(&self.descriptions).insert(key.as_str().to_owned(), description.into_owned());
    }

    fn description(&self, name: &str) -> String {
        read(&self.descriptions)
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// The cached handle of `key`, made by `make` the first time.
fn cached<T>(map: &RwLock<HashMap<Key, Arc<T>>>, key: &Key, make: impl FnOnce() -> T) -> Arc<T> {
    if let Some(found) = read(map).get(key) {
        return found.clone();
    }
    write(map)
        .entry(key.clone())
        .or_insert_with(|| Arc::new(make()))
        .clone()
}

fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// The OTel unit a metric's name announces (Prometheus naming: `_seconds`, `_bytes`).
pub fn unit_of(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_gib_seconds") {
        "GiBy.s"
    } else if base.ends_with("_core_seconds") {
        "{core}.s"
    } else if base.ends_with("_seconds") {
        "s"
    } else if base.ends_with("_bytes") {
        "By"
    } else {
        "1"
    }
}

impl Recorder for OtelRecorder {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(cached(&self.counters, key, || {
            let name = key.name().to_owned();
            OtelCounter {
                counter: self
                    .meter
                    .u64_counter(name.clone())
                    .with_unit(unit_of(&name))
                    .with_description(self.description(&name))
                    .build(),
                attributes: attributes(key),
                last: AtomicU64::new(0),
            }
        }))
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(cached(&self.gauges, key, || {
            let name = key.name().to_owned();
            OtelGauge {
                gauge: self
                    .meter
                    .f64_gauge(name.clone())
                    .with_unit(unit_of(&name))
                    .with_description(self.description(&name))
                    .build(),
                attributes: attributes(key),
                value: AtomicU64::new(0f64.to_bits()),
            }
        }))
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(cached(&self.histograms, key, || {
            let name = key.name().to_owned();
            OtelHistogram {
                histogram: self
                    .meter
                    .f64_histogram(name.clone())
                    .with_unit(unit_of(&name))
                    .with_description(self.description(&name))
                    .with_boundaries((self.buckets)(&name).to_vec())
                    .build(),
                attributes: attributes(key),
            }
        }))
    }
}

struct OtelCounter {
    counter: opentelemetry::metrics::Counter<u64>,
    attributes: Vec<KeyValue>,
    /// The last absolute value, so `absolute` becomes the increment OTel counters take.
    last: AtomicU64,
}

impl CounterFn for OtelCounter {
    fn increment(&self, value: u64) {
        self.counter.add(value, &self.attributes);
    }

    fn absolute(&self, value: u64) {
        let before = self.last.fetch_max(value, Ordering::Relaxed);
        if value > before {
            self.counter.add(value - before, &self.attributes);
        }
    }
}

struct OtelGauge {
    gauge: opentelemetry::metrics::Gauge<f64>,
    attributes: Vec<KeyValue>,
    /// The current value (f64 bits): `increment`/`decrement` move it, OTel records it.
    value: AtomicU64,
}

impl OtelGauge {
    fn update(&self, change: impl Fn(f64) -> f64) {
        let mut current = self.value.load(Ordering::Relaxed);
        loop {
            let next = change(f64::from_bits(current));
            match self.value.compare_exchange_weak(
                current,
                next.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.gauge.record(next, &self.attributes),
                Err(seen) => current = seen,
            }
        }
    }
}

impl GaugeFn for OtelGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

struct OtelHistogram {
    histogram: opentelemetry::metrics::Histogram<f64>,
    attributes: Vec<KeyValue>,
}

impl HistogramFn for OtelHistogram {
    fn record(&self, value: f64) {
        self.histogram.record(value, &self.attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::unit_of;

    #[test]
    fn units_follow_the_names() {
        assert_eq!(unit_of("sk8_http_request_duration_seconds"), "s");
        assert_eq!(unit_of("sk8_gateway_bytes_total"), "By");
        assert_eq!(unit_of("sk8_job_submits_total"), "1");
        assert_eq!(unit_of("sk8_resource_memory_gib_seconds_total"), "GiBy.s");
        assert_eq!(unit_of("sk8_resource_core_seconds_total"), "{core}.s");
    }
}
