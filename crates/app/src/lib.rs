//! One Application run as a library: a typed [`Application`] goes through its sources
//! (resolve, render), is compared with a cluster, and comes back as typed status
//! ([`plumb_model::ApplicationStatus`] parts); a sync operation comes back as a typed
//! [`plumb_model::OperationState`] outcome.
//!
//! This is the only path from an Application to the engine: `plumb diff`/`plumb sync`, the
//! controller and the API call it, so the flags of a one-shot run and the fields of an
//! Application mean the same thing.
//!
//! [`spec`] and [`status`] are pure; [`desired`] and [`sync`] do the I/O (Git, render
//! tools, the cluster).

pub mod desired;
pub mod spec;
pub mod status;
pub mod sync;

pub use desired::{AppSources, Desired, RenderOverrides};
pub use plumb_model::Application;
pub use status::Comparison;

use plumb_engine::compare::CompareFailure;
use plumb_source::SourceError;

/// Why an Application could not be compared or synced.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The spec itself is wrong (`InvalidSpecError`): no fix but editing the Application.
    #[error("{0}")]
    InvalidSpec(String),
    /// Resolving or rendering the sources failed (`ComparisonError`).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A revision could not be resolved; shared by every app on that repository until the
    /// next pass (the message of the one failed ls-remote).
    #[error("source {index} ({repo}): {message}")]
    Revision {
        index: usize,
        repo: String,
        message: String,
    },
    /// Reading or dry-running against the destination failed (`ComparisonError`).
    #[error(transparent)]
    Compare(#[from] CompareFailure),
    #[error("rendering {dir}: {source}")]
    Local {
        dir: String,
        #[source]
        source: Box<plumb_source::RenderError>,
    },
    #[error("{0}")]
    Setup(String),
}

impl AppError {
    /// The Argo CD condition type this error is reported as.
    pub fn condition_type(&self) -> &'static str {
        use plumb_model::condition_type;
        match self {
            AppError::InvalidSpec(_) => condition_type::INVALID_SPEC_ERROR,
            AppError::Setup(_) => condition_type::UNKNOWN_ERROR,
            _ => condition_type::COMPARISON_ERROR,
        }
    }
}

/// The current time as Kubernetes writes `metav1.Time` (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    now.format(&format).unwrap_or_default()
}
