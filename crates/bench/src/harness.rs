//! What every scenario shares: its description, its outcome, and small measuring helpers.

use std::time::Duration;

/// One benchmark scenario.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn() -> anyhow::Result<Outcome>,
}

/// A measured figure beside what it is compared with: a baseline measured in the same run
/// or, for the few scenarios nothing else can race, a fixed budget.
pub struct Outcome {
    pub figure: f64,
    pub unit: &'static str,
    pub baseline_label: String,
    pub baseline: f64,
    /// Whether a larger figure is better (throughput) or worse (latency, memory).
    pub higher_is_better: bool,
    /// `baseline` is a fixed number (a budget from an issue), not measured in this run; the
    /// result line says `budget` instead of `baseline`.
    pub fixed_budget: bool,
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
        let against = if self.fixed_budget {
            "budget"
        } else {
            "baseline"
        };
        let measured = if self.fixed_budget {
            " (fixed, not measured)"
        } else {
            ""
        };
        format!(
            "RESULT {name}: {:.3} {unit} | {against} {}: {:.3} {unit}{measured} | ratio {:.2}x ({})",
            self.figure,
            self.baseline_label,
            self.baseline,
            self.ratio(),
            if self.higher_is_better {
                format!("plumb/{against}")
            } else {
                format!("{against}/plumb")
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
            fixed_budget: false,
        };
        assert_eq!(throughput.ratio(), 2.0);
        let latency = Outcome {
            higher_is_better: false,
            ..throughput
        };
        assert_eq!(latency.ratio(), 0.5);
    }

    #[test]
    fn result_line_names_a_fixed_budget() {
        let measured = Outcome {
            figure: 2.0,
            unit: "ms",
            baseline_label: "tool".into(),
            baseline: 4.0,
            higher_is_better: false,
            fixed_budget: false,
        };
        assert_eq!(
            measured.result_line("x"),
            "RESULT x: 2.000 ms | baseline tool: 4.000 ms | ratio 2.00x (baseline/plumb)"
        );
        let budget = Outcome {
            baseline_label: "issue 11".into(),
            fixed_budget: true,
            ..measured
        };
        assert_eq!(
            budget.result_line("x"),
            "RESULT x: 2.000 ms | budget issue 11: 4.000 ms (fixed, not measured) | ratio 2.00x (budget/plumb)"
        );
    }
}
