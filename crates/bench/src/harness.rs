//! What every scenario shares: its description, its outcome, and small measuring helpers.

use std::time::Duration;

/// One benchmark scenario.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn() -> anyhow::Result<Outcome>,
}

/// A measured figure beside its baseline measured in the same run.
pub struct Outcome {
    pub figure: f64,
    pub unit: &'static str,
    pub baseline_label: String,
    pub baseline: f64,
    /// Whether a larger figure is better (throughput) or worse (latency, memory).
    pub higher_is_better: bool,
}

impl Outcome {
    /// How many times better plumb is than the baseline (>1 means plumb wins).
    pub fn ratio(&self) -> f64 {
        if self.higher_is_better {
            self.figure / self.baseline
        } else {
            self.baseline / self.figure
        }
    }

    pub fn result_line(&self, name: &str) -> String {
        format!(
            "RESULT {name}: {:.3} {unit} | baseline {}: {:.3} {unit} | ratio {:.2}x ({})",
            self.figure,
            self.baseline_label,
            self.baseline,
            self.ratio(),
            if self.higher_is_better {
                "plumb/baseline"
            } else {
                "baseline/plumb"
            },
            unit = self.unit,
        )
    }
}

/// The `p`-th percentile (0..=100) of durations, by nearest rank.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_by_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut samples, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&mut samples, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&mut [], 99.0), Duration::ZERO);
    }

    #[test]
    fn ratio_orients_by_direction() {
        let throughput = Outcome {
            figure: 200.0,
            unit: "ops/s",
            baseline_label: "x".into(),
            baseline: 100.0,
            higher_is_better: true,
        };
        assert_eq!(throughput.ratio(), 2.0);
        let latency = Outcome {
            higher_is_better: false,
            ..throughput
        };
        assert_eq!(latency.ratio(), 0.5);
    }
}
