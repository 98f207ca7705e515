//! What the controller does with a compared app: nothing, wait, or start a sync — and,
//! when it does nothing, why (the answer to "why is it not in sync yet"). Pure.

use plumb_model::{
    Application, Operation, OperationInitiator, OperationPhase, RevisionHistory, SyncOperation,
    SyncStatusCode,
};
use std::time::Duration;

/// The compared state the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub sync_status: SyncStatusCode,
    /// Resolved revisions of the comparison (one per source).
    pub revisions: &'a [String],
    /// Resources out of sync other than by needing a prune.
    pub out_of_sync_not_prune: usize,
    /// Resources that only need pruning.
    pub requires_pruning: usize,
    /// Objects rendered (0: the revision declares nothing).
    pub desired_objects: usize,
    pub comparison_error: bool,
    /// Time since the last operation finished, if one did.
    pub since_last_operation: Option<Duration>,
}

/// The controller's decision for one app.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start this operation now.
    Sync(Box<Operation>),
    /// Look again after this long (the self-heal timeout has not passed yet).
    WaitFor(Duration, String),
    /// Nothing to do; the reason, when there is one, is why the app stays out of sync.
    Idle(Option<String>),
}

/// Argo CD's self-heal backoff is per revision; plumb keeps the timeout flat.
pub fn decide(app: &Application, observed: Observed<'_>, self_heal_timeout: Duration) -> Decision {
    if observed.sync_status == SyncStatusCode::Synced {
        return Decision::Idle(None);
    }
    let Some(automated) = app
        .spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.automated.as_ref())
    else {
        return Decision::Idle(Some(
            "auto-sync is off (spec.syncPolicy.automated is not set): sync it by hand".to_string(),
        ));
    };
    if observed.comparison_error {
        return Decision::Idle(Some(
            "the comparison failed (see the ComparisonError condition); auto-sync waits for a comparison that succeeds"
                .to_string(),
        ));
    }
    if observed.sync_status != SyncStatusCode::OutOfSync {
        return Decision::Idle(Some("the sync status is Unknown".to_string()));
    }
    if observed.desired_objects == 0 && !automated.allow_empty {
        return Decision::Idle(Some(
            "the revision declares no resources and allowEmpty is off: auto-sync would delete everything"
                .to_string(),
        ));
    }
    if observed.out_of_sync_not_prune == 0 && observed.requires_pruning > 0 && !automated.prune {
        return Decision::Idle(Some(format!(
            "{} resource(s) need pruning and automated prune is off: sync with prune by hand",
            observed.requires_pruning
        )));
    }
    let revision = observed.revisions.first().cloned().unwrap_or_default();
    let last = app.status.as_ref().and_then(|s| s.operation_state.as_ref());
    let same_revision = |state: &plumb_model::OperationState| {
        let synced = state.sync_result.as_ref();
        let synced_revisions: Vec<String> = match synced {
            Some(result) if !result.revisions.is_empty() => result.revisions.clone(),
            Some(result) => vec![result.revision.clone()],
            None => Vec::new(),
        };
        synced_revisions == observed.revisions
    };
    if let Some(state) = last
        && state.operation.initiated_by.automated
        && same_revision(state)
    {
        match state.phase {
            OperationPhase::Failed | OperationPhase::Error => {
                return Decision::Idle(Some(format!(
                    "the automatic sync to {} failed ({}); it is not retried until the revision changes or someone syncs by hand",
                    short(&revision),
                    state.message
                )));
            }
            OperationPhase::Succeeded => {
                // Synced to this revision before: the live state drifted.
                if !automated.self_heal {
                    return Decision::Idle(Some(format!(
                        "the live state drifted from {} and self-heal is off: sync by hand or set spec.syncPolicy.automated.selfHeal",
                        short(&revision)
                    )));
                }
                let elapsed = observed.since_last_operation.unwrap_or(Duration::MAX);
                if elapsed < self_heal_timeout {
                    return Decision::WaitFor(
                        self_heal_timeout - elapsed,
                        "waiting for the self-heal timeout before undoing drift".to_string(),
                    );
                }
            }
            OperationPhase::Running | OperationPhase::Terminating => {
                return Decision::Idle(Some("an operation is running".to_string()));
            }
        }
    }
    let policy = app.spec.sync_policy.as_ref();
    let multi = !app.spec.sources.is_empty();
    Decision::Sync(Box::new(Operation {
        sync: Some(SyncOperation {
            revision: if multi { String::new() } else { revision },
            revisions: if multi {
                observed.revisions.to_vec()
            } else {
                Vec::new()
            },
            prune: automated.prune,
            sync_options: policy.map(|p| p.sync_options.clone()).unwrap_or_default(),
            ..Default::default()
        }),
        initiated_by: OperationInitiator {
            username: String::new(),
            automated: true,
        },
        info: Vec::new(),
        retry: policy.and_then(|p| p.retry.clone()),
    }))
}

fn short(revision: &str) -> &str {
    revision.get(..7).unwrap_or(revision)
}

/// Appends a successful sync to the history, keeping the newest `limit` entries
/// (Argo CD's `revisionHistoryLimit`, default 10).
pub fn append_history(
    history: &mut Vec<RevisionHistory>,
    mut entry: RevisionHistory,
    limit: Option<i64>,
) {
    entry.id = history.iter().map(|h| h.id + 1).max().unwrap_or(0);
    history.push(entry);
    let limit = usize::try_from(limit.unwrap_or(10).max(1)).unwrap_or(10);
    if history.len() > limit {
        let excess = history.len() - limit;
        history.drain(..excess);
    }
}

/// Why a rollback to history entry `id` cannot run, or the operation that runs it.
pub fn rollback(app: &Application, id: i64, prune: bool) -> Result<Operation, String> {
    if app
        .spec
        .sync_policy
        .as_ref()
        .is_some_and(|p| p.automated.is_some())
    {
        return Err(
            "rollback is refused while auto-sync is on (it would sync the newer revision right back): turn auto-sync off first (remove spec.syncPolicy.automated), then roll back"
                .to_string(),
        );
    }
    let history = app
        .status
        .as_ref()
        .map(|s| s.history.as_slice())
        .unwrap_or_default();
    let Some(entry) = history.iter().find(|h| h.id == id) else {
        let ids: Vec<String> = history.iter().map(|h| h.id.to_string()).collect();
        return Err(format!(
            "history has no entry {id} (entries: {})",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        ));
    };
    Ok(Operation {
        sync: Some(SyncOperation {
            revision: entry.revision.clone(),
            revisions: entry.revisions.clone(),
            prune,
            source: entry.source.clone(),
            sources: entry.sources.clone(),
            ..Default::default()
        }),
        initiated_by: OperationInitiator {
            username: "rollback".to_string(),
            automated: false,
        },
        info: vec![plumb_model::Info {
            name: "Rollback".to_string(),
            value: format!("to history id {id}"),
        }],
        retry: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumb_model::{ApplicationStatus, OperationState, SyncOperationResult};

    fn app(automated: Option<&str>) -> Application {
        let policy = automated
            .map(|a| format!(r#", "syncPolicy": {{"automated": {a}}}"#))
            .unwrap_or_default();
        serde_json::from_str(&format!(
            r#"{{"metadata": {{"name": "a"}}, "spec": {{"destination": {{"name": "in-cluster"}}{policy}}}}}"#
        ))
        .expect("application")
    }

    fn observed(revisions: &[String]) -> Observed<'_> {
        Observed {
            sync_status: SyncStatusCode::OutOfSync,
            revisions,
            out_of_sync_not_prune: 1,
            requires_pruning: 0,
            desired_objects: 3,
            comparison_error: false,
            since_last_operation: None,
        }
    }

    fn with_last(mut app: Application, revision: &str, phase: OperationPhase) -> Application {
        app.status = Some(ApplicationStatus {
            operation_state: Some(OperationState {
                operation: Operation {
                    initiated_by: OperationInitiator {
                        username: String::new(),
                        automated: true,
                    },
                    ..Default::default()
                },
                phase,
                message: "boom".to_string(),
                sync_result: Some(SyncOperationResult {
                    revision: revision.to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        app
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn out_of_sync_without_automation_says_so() {
        let revs = ["abc".to_string()];
        match decide(&app(None), observed(&revs), T) {
            Decision::Idle(Some(reason)) => assert!(reason.contains("auto-sync is off")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn automated_out_of_sync_syncs_with_the_policy() {
        let revs = ["abc".to_string()];
        match decide(&app(Some(r#"{"prune": true}"#)), observed(&revs), T) {
            Decision::Sync(op) => {
                let sync = op.sync.expect("sync");
                assert_eq!(sync.revision, "abc");
                assert!(sync.prune);
                assert!(op.initiated_by.automated);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_automatic_sync_is_not_retried_for_the_same_revision() {
        let revs = ["abc".to_string()];
        let failed = with_last(app(Some("{}")), "abc", OperationPhase::Failed);
        assert!(
            matches!(decide(&failed, observed(&revs), T), Decision::Idle(Some(r)) if r.contains("not retried"))
        );
        let newer = ["def".to_string()];
        assert!(matches!(
            decide(&failed, observed(&newer), T),
            Decision::Sync(_)
        ));
    }

    #[test]
    fn drift_waits_for_the_self_heal_timeout_then_heals() {
        let revs = ["abc".to_string()];
        let synced = with_last(
            app(Some(r#"{"selfHeal": true}"#)),
            "abc",
            OperationPhase::Succeeded,
        );
        let mut seen = observed(&revs);
        seen.since_last_operation = Some(Duration::from_secs(2));
        assert!(
            matches!(decide(&synced, seen, T), Decision::WaitFor(d, _) if d == Duration::from_secs(3))
        );
        seen.since_last_operation = Some(Duration::from_secs(6));
        assert!(matches!(decide(&synced, seen, T), Decision::Sync(_)));
        assert!(matches!(
            decide(&synced, seen, Duration::ZERO),
            Decision::Sync(_)
        ));
        let no_heal = with_last(app(Some("{}")), "abc", OperationPhase::Succeeded);
        assert!(
            matches!(decide(&no_heal, seen, T), Decision::Idle(Some(r)) if r.contains("self-heal is off"))
        );
    }

    #[test]
    fn empty_revisions_and_prune_only_changes_need_permission() {
        let revs = ["abc".to_string()];
        let mut seen = observed(&revs);
        seen.desired_objects = 0;
        assert!(
            matches!(decide(&app(Some("{}")), seen, T), Decision::Idle(Some(r)) if r.contains("allowEmpty"))
        );
        assert!(matches!(
            decide(&app(Some(r#"{"allowEmpty": true}"#)), seen, T),
            Decision::Sync(_)
        ));
        let mut seen = observed(&revs);
        seen.out_of_sync_not_prune = 0;
        seen.requires_pruning = 2;
        assert!(
            matches!(decide(&app(Some("{}")), seen, T), Decision::Idle(Some(r)) if r.contains("pruning"))
        );
    }

    #[test]
    fn history_keeps_the_newest_entries_with_growing_ids() {
        let mut history = Vec::new();
        for n in 0..12 {
            append_history(
                &mut history,
                RevisionHistory {
                    revision: format!("r{n}"),
                    ..Default::default()
                },
                None,
            );
        }
        assert_eq!(history.len(), 10);
        assert_eq!(history[0].revision, "r2");
        assert_eq!(history[9].id, 11);
        append_history(&mut history, RevisionHistory::default(), Some(3));
        assert_eq!(history.len(), 3);
        assert_eq!(history[2].id, 12);
    }

    #[test]
    fn rollback_is_refused_while_automated_and_names_the_way_out() {
        let mut app = app(Some("{}"));
        let error = rollback(&app, 0, false).expect_err("refused");
        assert!(error.contains("turn auto-sync off"), "{error}");
        app.spec.sync_policy = None;
        app.status = Some(ApplicationStatus {
            history: vec![RevisionHistory {
                id: 4,
                revision: "old".to_string(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(
            rollback(&app, 3, false)
                .expect_err("missing")
                .contains("entries: 4")
        );
        let op = rollback(&app, 4, true).expect("rollback");
        assert_eq!(op.sync.expect("sync").revision, "old");
    }
}
