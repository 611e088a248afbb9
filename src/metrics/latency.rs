//! A latency histogram that serving threads add to without a lock.
//!
//! prometheus-client's own histogram takes a lock per observation and
//! observes one value at a time; here every bucket is an atomic, and one
//! call records a whole burst (its count of requests, all taking the
//! burst's time), so counting costs a few atomic adds per burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// The first bucket's upper bound, in microseconds; each next one doubles.
const FIRST_BUCKET_US: u64 = 50;
/// 50 µs to 819.2 ms, then +Inf.
const BUCKETS: usize = 15;

/// Request durations: shared by clones, like prometheus-client's metrics.
#[derive(Debug, Clone, Default)]
pub struct Latency(Arc<Buckets>);

#[derive(Debug, Default)]
struct Buckets {
    /// Observations per bucket (not cumulative); the last is +Inf.
    counts: [AtomicU64; BUCKETS + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Latency {
    /// Records `requests` requests that each took `took`.
    pub fn observe(&self, took: Duration, requests: u64) {
        if requests == 0 {
            return;
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = (0..BUCKETS)
            .find(|&i| micros <= FIRST_BUCKET_US << i)
            .unwrap_or(BUCKETS);
        let buckets = &self.0;
        if let Some(slot) = buckets.counts.get(bucket) {
            slot.fetch_add(requests, Ordering::Relaxed);
        }
        buckets.count.fetch_add(requests, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        buckets
            .sum_nanos
            .fetch_add(nanos.saturating_mul(requests), Ordering::Relaxed);
    }

    /// How many requests were recorded.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets = &self.0;
        let bounds = (0..BUCKETS)
            .map(|i| (FIRST_BUCKET_US << i) as f64 / 1e6)
            .chain([f64::INFINITY]);
        let counts: Vec<(f64, u64)> = bounds
            .zip(&buckets.counts)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        // The count as the buckets add up, so a scrape in the middle of an
        // observation stays consistent with its own buckets.
        let count = counts.iter().map(|(_, count)| count).sum();
        let sum = buckets.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &counts, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_lands_in_one_bucket_counted_whole() {
        let latency = Latency::default();
        latency.observe(Duration::from_micros(40), 3);
        latency.observe(Duration::from_micros(51), 1);
        latency.observe(Duration::from_secs(5), 2);
        latency.observe(Duration::from_secs(5), 0);
        assert_eq!(latency.count(), 6);
        let counts: Vec<u64> = latency
            .0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts[0], 3);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[BUCKETS], 2);
    }
}
