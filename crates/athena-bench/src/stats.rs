//! Latency summaries: exact percentiles over every recorded sample (nearest-rank), so a p99 is a real observation.

use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

/// The nearest-rank percentile `p` (0..=100) of sorted samples; `None` when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    // Nearest rank: the smallest sample with at least p% of samples at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort_unstable();
    let count = samples.len();
    if count == 0 {
        return Summary::default();
    }
    let total: Duration = samples.iter().sum();
    Summary {
        count,
        p50: percentile(&samples, 50.0).unwrap_or_default(),
        p90: percentile(&samples, 90.0).unwrap_or_default(),
        p99: percentile(&samples, 99.0).unwrap_or_default(),
        max: *samples.last().unwrap_or(&Duration::ZERO),
        mean: total / count as u32,
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(d).collect();
        assert_eq!(percentile(&samples, 50.0), Some(d(50)));
        assert_eq!(percentile(&samples, 99.0), Some(d(99)));
        assert_eq!(percentile(&samples, 100.0), Some(d(100)));
        assert_eq!(percentile(&samples, 0.0), Some(d(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_of_unsorted_samples() {
        let s = summarize(vec![d(5), d(1), d(3), d(2), d(4)]);
        assert_eq!(s.count, 5);
        assert_eq!(s.p50, d(3));
        assert_eq!(s.max, d(5));
        assert_eq!(s.mean, d(3));
        assert_eq!(summarize(Vec::new()).count, 0);
    }
}
