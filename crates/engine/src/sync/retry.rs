//! Retry with backoff, as Argo CD computes it: wait `duration · factor^retry`, capped at
//! `maxDuration`; defaults 5s, factor 2, 3m.

use plumb_model::RetryStrategy;
use std::time::Duration;

pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);
pub const DEFAULT_FACTOR: i64 = 2;
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration (examples: 5s, 2m, 1h30m, or a number of seconds)")]
    Invalid(String),
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`) or, as Argo CD accepts, a bare number
/// of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(text.to_string());
    let trimmed = text.trim();
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = trimmed;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * unit_seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

/// The backoff of a retry strategy, with Argo CD's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub duration: Duration,
    pub factor: i64,
    pub max_duration: Duration,
}

impl Backoff {
    pub fn from_strategy(strategy: &RetryStrategy) -> Result<Self, DurationError> {
        let mut backoff = Backoff {
            duration: DEFAULT_DURATION,
            factor: DEFAULT_FACTOR,
            max_duration: DEFAULT_MAX_DURATION,
        };
        if let Some(spec) = &strategy.backoff {
            if let Some(text) = spec.duration.as_deref().filter(|t| !t.is_empty()) {
                backoff.duration = parse_duration(text)?;
            }
            if let Some(text) = spec.max_duration.as_deref().filter(|t| !t.is_empty()) {
                backoff.max_duration = parse_duration(text)?;
            }
            if let Some(factor) = spec.factor {
                backoff.factor = factor;
            }
        }
        Ok(backoff)
    }

    /// How long to wait before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let scaled = self.duration.as_secs_f64()
            * (self.factor as f64).powi(i32::try_from(retry).unwrap_or(i32::MAX));
        let capped = if self.max_duration > Duration::ZERO {
            scaled.min(self.max_duration.as_secs_f64())
        } else {
            scaled
        };
        Duration::try_from_secs_f64(capped.max(0.0)).unwrap_or(self.max_duration)
    }
}

/// Whether another attempt is allowed after `attempts_failed` failures (negative limit =
/// unlimited, as in Argo CD).
pub fn may_retry(strategy: &RetryStrategy, retries_done: u32) -> bool {
    strategy.limit < 0 || i64::from(retries_done) < strategy.limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumb_model::Backoff as BackoffSpec;
    use proptest::prelude::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("five").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn seed_manifest_backoff_golden() {
        let strategy = RetryStrategy {
            limit: 5,
            backoff: Some(BackoffSpec {
                duration: Some("5s".into()),
                factor: Some(2),
                max_duration: Some("3m".into()),
            }),
            refresh: false,
        };
        let backoff = Backoff::from_strategy(&strategy).expect("backoff");
        let delays: Vec<u64> = (0..7).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 180]);
        assert!(may_retry(&strategy, 4));
        assert!(!may_retry(&strategy, 5));
        let unlimited = RetryStrategy {
            limit: -1,
            backoff: None,
            refresh: false,
        };
        assert!(may_retry(&unlimited, 10_000));
    }

    proptest! {
        #[test]
        fn delays_never_exceed_max_and_never_shrink(
            duration in 1u64..120, factor in 1i64..5, max in 1u64..600, retry in 0u32..40
        ) {
            let backoff = Backoff {
                duration: Duration::from_secs(duration),
                factor,
                max_duration: Duration::from_secs(max),
            };
            prop_assert!(backoff.delay(retry) <= Duration::from_secs(max));
            prop_assert!(backoff.delay(retry + 1) >= backoff.delay(retry));
        }
    }
}
