//! Sync options: the Application's `syncPolicy.syncOptions` and the per-object annotation
//! `argocd.argoproj.io/sync-options` (comma-separated `Name=value`), which overrides them.

use crate::json::annotation;
use serde_json::Value;

pub const SYNC_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/sync-options";

/// How dependents are deleted when an object is pruned (`PrunePropagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum PropagationPolicy {
    #[default]
    Foreground,
    Background,
    Orphan,
}

impl PropagationPolicy {
    /// The value of Kubernetes' `DeleteOptions.propagationPolicy`.
    pub fn as_kubernetes(self) -> &'static str {
        match self {
            Self::Foreground => "Foreground",
            Self::Background => "Background",
            Self::Orphan => "Orphan",
        }
    }
}

/// `Prune=` / `Delete=`: whether plumb may delete the object, or only after confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum DeletionOption {
    #[default]
    Allowed,
    Disabled,
    RequiresConfirmation,
}

/// The sync options in effect for an operation or one object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncOptions {
    pub prune: DeletionOption,
    pub delete: DeletionOption,
    pub prune_last: bool,
    pub prune_propagation_policy: PropagationPolicy,
    pub create_namespace: bool,
    /// Server-side apply (plumb's default); `ServerSideApply=false` writes with kubectl-style
    /// client-side apply (last-applied annotation, three-way patch: [`crate::client_apply`]).
    pub server_side_apply: bool,
    pub replace: bool,
    pub force: bool,
    pub apply_out_of_sync_only: bool,
    pub validate: bool,
    pub skip_dry_run_on_missing_resource: bool,
    pub respect_ignore_differences: bool,
    pub fail_on_shared_resource: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            prune: DeletionOption::Allowed,
            delete: DeletionOption::Allowed,
            prune_last: false,
            prune_propagation_policy: PropagationPolicy::Foreground,
            create_namespace: false,
            server_side_apply: true,
            replace: false,
            force: false,
            apply_out_of_sync_only: false,
            validate: true,
            skip_dry_run_on_missing_resource: false,
            respect_ignore_differences: false,
            fail_on_shared_resource: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncOptionError {
    #[error("sync option {0:?} is not of the form Name=value")]
    Malformed(String),
    #[error("sync option {name}: {value:?} is not a valid value ({expected})")]
    BadValue {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("unknown sync option {0:?}")]
    Unknown(String),
}

fn parse_bool(name: &str, value: &str) -> Result<bool, SyncOptionError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SyncOptionError::BadValue {
            name: name.to_string(),
            value: value.to_string(),
            expected: "true or false",
        }),
    }
}

fn parse_deletion(name: &str, value: &str) -> Result<DeletionOption, SyncOptionError> {
    match value.trim() {
        "true" => Ok(DeletionOption::Allowed),
        "false" => Ok(DeletionOption::Disabled),
        "confirm" => Ok(DeletionOption::RequiresConfirmation),
        _ => Err(SyncOptionError::BadValue {
            name: name.to_string(),
            value: value.to_string(),
            expected: "true, false or confirm",
        }),
    }
}

impl SyncOptions {
    /// Applies one `Name=value` option on top of these options.
    pub fn apply(&mut self, option: &str) -> Result<(), SyncOptionError> {
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| SyncOptionError::Malformed(option.to_string()))?;
        let (name, value) = (name.trim(), value.trim());
        match name {
            "Prune" => self.prune = parse_deletion(name, value)?,
            "Delete" => self.delete = parse_deletion(name, value)?,
            "PruneLast" => self.prune_last = parse_bool(name, value)?,
            "PrunePropagationPolicy" => {
                self.prune_propagation_policy = match value.to_ascii_lowercase().as_str() {
                    "foreground" => PropagationPolicy::Foreground,
                    "background" => PropagationPolicy::Background,
                    "orphan" => PropagationPolicy::Orphan,
                    _ => {
                        return Err(SyncOptionError::BadValue {
                            name: name.to_string(),
                            value: value.to_string(),
                            expected: "foreground, background or orphan",
                        });
                    }
                }
            }
            "CreateNamespace" => self.create_namespace = parse_bool(name, value)?,
            "ServerSideApply" => self.server_side_apply = parse_bool(name, value)?,
            "Replace" => self.replace = parse_bool(name, value)?,
            "Force" => self.force = parse_bool(name, value)?,
            "ApplyOutOfSyncOnly" => self.apply_out_of_sync_only = parse_bool(name, value)?,
            "Validate" => self.validate = parse_bool(name, value)?,
            "SkipDryRunOnMissingResource" => {
                self.skip_dry_run_on_missing_resource = parse_bool(name, value)?
            }
            "RespectIgnoreDifferences" => {
                self.respect_ignore_differences = parse_bool(name, value)?
            }
            "FailOnSharedResource" => self.fail_on_shared_resource = parse_bool(name, value)?,
            _ => return Err(SyncOptionError::Unknown(name.to_string())),
        }
        Ok(())
    }

    /// Parses an Application's `syncOptions` list (later entries win).
    pub fn parse<S: AsRef<str>>(options: &[S]) -> Result<Self, SyncOptionError> {
        let mut parsed = Self::default();
        for option in options {
            parsed.apply(option.as_ref())?;
        }
        Ok(parsed)
    }

    /// The options for one object: these, overridden by its `sync-options` annotation.
    /// Options the annotation cannot parse are returned as errors beside the result, so a
    /// typo is reported without blocking the whole sync.
    pub fn for_object(&self, object: &Value) -> (Self, Vec<SyncOptionError>) {
        let mut effective = self.clone();
        let mut errors = Vec::new();
        if let Some(text) = annotation(object, SYNC_OPTIONS_ANNOTATION) {
            for option in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                if let Err(error) = effective.apply(option) {
                    errors.push(error);
                }
            }
        }
        (effective, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn app_options_then_object_annotation() {
        let app = SyncOptions::parse(&[
            "CreateNamespace=true",
            "PrunePropagationPolicy=background",
            "PruneLast=true",
        ])
        .expect("parse");
        assert!(app.create_namespace);
        assert_eq!(app.prune_propagation_policy, PropagationPolicy::Background);
        let object = json!({"metadata": {"annotations": {
            SYNC_OPTIONS_ANNOTATION: "Prune=false, Validate=false,Bogus=1"
        }}});
        let (effective, errors) = app.for_object(&object);
        assert_eq!(effective.prune, DeletionOption::Disabled);
        assert!(!effective.validate);
        assert!(effective.prune_last);
        assert_eq!(errors, [SyncOptionError::Unknown("Bogus".to_string())]);
    }

    #[test]
    fn bad_values_are_named() {
        let error = SyncOptions::parse(&["Replace=yes"]).expect_err("bad");
        assert!(error.to_string().contains("Replace"), "{error}");
        assert!(SyncOptions::parse(&["Replace"]).is_err());
        assert_eq!(
            SyncOptions::parse(&["Prune=confirm"]).map(|o| o.prune),
            Ok(DeletionOption::RequiresConfirmation)
        );
    }
}
