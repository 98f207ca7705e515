use crate::{fixture_path, fixture_yaml};
use plumb_engine::diff::object_key;
use plumb_engine::hooks::HookDeletePolicy;
use plumb_engine::sync::{
    self, PlanRequest, PlanResource, ResourceSelector, SyncOptions, SyncPlan, SyncTask, TaskAction,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn resources(desired: &Value, live_only: &Value) -> Vec<PlanResource> {
    let mut resources: Vec<PlanResource> = desired
        .as_array()
        .expect("list")
        .iter()
        .map(|object| PlanResource {
            key: object_key(object),
            target: Some(object.clone()),
            live: None,
            out_of_sync: true,
        })
        .collect();
    resources.extend(
        live_only
            .as_array()
            .expect("list")
            .iter()
            .map(|object| PlanResource {
                key: object_key(object),
                target: None,
                live: Some(object.clone()),
                out_of_sync: true,
            }),
    );
    resources
}

fn render(task: &SyncTask) -> String {
    let key = &task.key;
    let mut line = format!(
        "{} {} {:?} {}/{} {}/{}",
        task.phase.as_str(),
        task.wave,
        task.action,
        key.group,
        key.kind,
        key.namespace,
        key.name
    );
    if task.action == TaskAction::Hook {
        let policies: Vec<&str> = task
            .delete_policies
            .iter()
            .map(|p| match p {
                HookDeletePolicy::HookSucceeded => "HookSucceeded",
                HookDeletePolicy::HookFailed => "HookFailed",
                HookDeletePolicy::BeforeHookCreation => "BeforeHookCreation",
            })
            .collect();
        line.push_str(&format!(" [{}]", policies.join(", ")));
    }
    if let Some(reason) = &task.skip_reason {
        line.push_str(&format!(" ({reason})"));
    }
    line
}

fn plan_with(
    options: &SyncOptions,
    prune: bool,
    selection: Option<&[ResourceSelector]>,
) -> SyncPlan {
    let resources = resources(
        &fixture_yaml("plan/desired.yaml"),
        &fixture_yaml("plan/live_only.yaml"),
    );
    sync::plan(&PlanRequest {
        revision: "abcdef1234567890",
        started_at: 1_700_000_000,
        options,
        prune,
        prune_confirmed: false,
        selection,
        resources: &resources,
    })
}

#[test]
fn full_plan_matches_golden_order() {
    let plan = plan_with(&SyncOptions::default(), true, None);
    let rendered: Vec<String> = plan
        .tasks
        .iter()
        .chain(&plan.fail_tasks)
        .map(render)
        .collect();
    let expected = std::fs::read_to_string(fixture_path("plan/expected.txt")).expect("golden");
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(rendered, expected, "\n{}", rendered.join("\n"));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    // The steps group one phase and wave each, in order.
    let steps: Vec<(String, i64)> = plan
        .steps()
        .iter()
        .map(|s| (s.phase.as_str().to_string(), s.wave))
        .collect();
    assert_eq!(
        steps,
        [
            ("PreSync", -5),
            ("PreSync", 0),
            ("Sync", -1),
            ("Sync", 0),
            ("Sync", 2),
            ("Sync", 3),
            ("Sync", 4),
            ("PostSync", 0)
        ]
        .map(|(p, w)| (p.to_string(), w))
    );
    // PostDelete hooks are planned only for app deletion.
    let desired = fixture_yaml("plan/desired.yaml");
    let post_delete = sync::plan_post_delete(desired.as_array().expect("list"), "abc", 1);
    assert_eq!(post_delete.len(), 1);
    assert_eq!(post_delete[0].key.name, "cleanup");
}

#[test]
fn without_prune_everything_is_skipped_with_reason() {
    let plan = plan_with(&SyncOptions::default(), false, None);
    let prunes: Vec<&SyncTask> = plan
        .tasks
        .iter()
        .filter(|t| t.action == TaskAction::Prune)
        .collect();
    assert_eq!(prunes.len(), 5);
    assert!(
        prunes
            .iter()
            .all(|t| t.skip_reason.as_deref() == Some("ignored (requires pruning)"))
    );
}

#[test]
fn app_level_prune_last_and_propagation() {
    let options =
        SyncOptions::parse(&["PruneLast=true", "PrunePropagationPolicy=orphan"]).expect("options");
    let plan = plan_with(&options, true, None);
    let prunes: Vec<&SyncTask> = plan
        .tasks
        .iter()
        .filter(|t| t.action == TaskAction::Prune)
        .collect();
    assert!(
        prunes.iter().all(|t| t.wave == 4),
        "{:?}",
        prunes.iter().map(|t| t.wave).collect::<Vec<_>>()
    );
    assert!(
        prunes
            .iter()
            .all(|t| t.options.prune_propagation_policy == sync::PropagationPolicy::Orphan)
    );
}

#[test]
fn selective_sync_runs_no_hooks() {
    let selection = [
        ResourceSelector::parse("apps:Deployment:web").expect("selector"),
        ResourceSelector::parse(":ConfigMap:shop/old-config").expect("selector"),
    ];
    let plan = plan_with(&SyncOptions::default(), true, Some(&selection));
    let rendered: Vec<String> = plan.tasks.iter().map(render).collect();
    assert_eq!(
        rendered,
        [
            "Sync 0 Prune /ConfigMap shop/old-config",
            "Sync 0 Apply apps/Deployment shop/web"
        ]
    );
    assert!(plan.fail_tasks.is_empty());
    assert!(ResourceSelector::parse("Deployment/web").is_err());
}

#[test]
fn apply_out_of_sync_only_skips_synced_resources() {
    let options = SyncOptions::parse(&["ApplyOutOfSyncOnly=true"]).expect("options");
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}});
    let resources = [PlanResource {
        key: object_key(&object),
        target: Some(object.clone()),
        live: Some(object.clone()),
        out_of_sync: false,
    }];
    let plan = sync::plan(&PlanRequest {
        revision: "r",
        started_at: 0,
        options: &options,
        prune: false,
        prune_confirmed: false,
        selection: None,
        resources: &resources,
    });
    assert!(plan.tasks.is_empty());
}

#[test]
fn bad_per_object_option_is_a_warning() {
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "n", "annotations": {"argocd.argoproj.io/sync-options": "Replace=maybe"}}});
    let resources = [PlanResource {
        key: object_key(&object),
        target: Some(object),
        live: None,
        out_of_sync: true,
    }];
    let plan = sync::plan(&PlanRequest {
        revision: "r",
        started_at: 0,
        options: &SyncOptions::default(),
        prune: false,
        prune_confirmed: false,
        selection: None,
        resources: &resources,
    });
    assert_eq!(plan.tasks.len(), 1);
    assert!(plan.warnings[0].contains("Replace"), "{:?}", plan.warnings);
}

fn arbitrary_object() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "Namespace",
            "ConfigMap",
            "Deployment",
            "Service",
            "Widget",
            "Job",
            "CustomResourceDefinition",
        ]),
        "[a-z]{1,6}",
        -3i64..4,
        prop::option::of(prop::sample::select(vec![
            "PreSync", "Sync", "PostSync", "SyncFail", "Skip",
        ])),
    )
        .prop_map(|(kind, name, wave, hook)| {
            let mut annotations = serde_json::Map::new();
            annotations.insert(
                "argocd.argoproj.io/sync-wave".into(),
                json!(wave.to_string()),
            );
            if let Some(hook) = hook {
                annotations.insert("argocd.argoproj.io/hook".into(), json!(hook));
            }
            json!({"apiVersion": "v1", "kind": kind,
                   "metadata": {"name": name, "namespace": "n", "annotations": annotations}})
        })
}

proptest! {
    #[test]
    fn plan_is_ordered_and_complete(objects in proptest::collection::vec(arbitrary_object(), 0..25), prune_live in proptest::collection::vec(arbitrary_object(), 0..6)) {
        let mut seen = std::collections::HashSet::new();
        let objects: Vec<Value> = objects.into_iter().filter(|o| seen.insert(object_key(o))).collect();
        let prune_live: Vec<Value> = prune_live.into_iter().filter(|o| seen.insert(object_key(o))).collect();
        let mut resources: Vec<PlanResource> = objects.iter().map(|o| PlanResource {
            key: object_key(o), target: Some(o.clone()), live: None, out_of_sync: true,
        }).collect();
        resources.extend(prune_live.iter().map(|o| PlanResource {
            key: object_key(o), target: None, live: Some(o.clone()), out_of_sync: true,
        }));
        let options = SyncOptions::default();
        let plan = sync::plan(&PlanRequest {
            revision: "r", started_at: 0, options: &options, prune: true, prune_confirmed: false,
            selection: None, resources: &resources,
        });
        for pair in plan.tasks.windows(2) {
            prop_assert!(sync::plan::compare_tasks(&pair[0], &pair[1]) != std::cmp::Ordering::Greater);
        }
        // Every non-skipped desired object shows up at least once; Skip objects never do.
        for object in &objects {
            let key = object_key(object);
            let present = plan.tasks.iter().chain(&plan.fail_tasks).any(|t| t.key == key);
            let skipped = plumb_engine::hooks::is_skipped(object);
            prop_assert!(present != skipped, "{key}");
        }
    }
}

/// The running-task table of gitops-engine's sync context (`pkg/sync/sync_context.go`:
/// hooks through `getOperationPhase`, other resources through their health), every cell.
#[test]
fn running_tasks_are_judged_as_gitops_engine_judges_them() {
    use plumb_model::HealthStatusCode as H;
    use sync::TaskProgress::{Failed, Running, Succeeded};
    let table = [
        (H::Healthy, Succeeded, Succeeded),
        (H::Degraded, Failed, Failed),
        (H::Unknown, Failed, Running),
        (H::Progressing, Running, Running),
        (H::Suspended, Running, Running),
        (H::Missing, Succeeded, Running),
    ];
    for (health, hook, resource) in table {
        assert_eq!(
            sync::running_task_progress(TaskAction::Hook, Some(health)),
            hook,
            "hook {health:?}"
        );
        assert_eq!(
            sync::running_task_progress(TaskAction::Apply, Some(health)),
            resource,
            "resource {health:?}"
        );
    }
    // Kinds without a health assessment succeed at once, hooks or not.
    assert_eq!(
        sync::running_task_progress(TaskAction::Hook, None),
        Succeeded
    );
    assert_eq!(
        sync::running_task_progress(TaskAction::Apply, None),
        Succeeded
    );
}

#[test]
fn only_multi_step_syncs_gate_on_health_and_the_last_step_only_with_hooks() {
    // (index, steps, step has hooks) → gates
    let table = [
        ((0, 1, false), false),
        ((0, 1, true), false),
        ((0, 2, false), true),
        ((1, 2, false), false),
        ((1, 2, true), true),
        ((1, 3, false), true),
    ];
    for ((index, steps, hooks), gates) in table {
        assert_eq!(
            sync::step_gates_health(index, steps, hooks),
            gates,
            "step {index} of {steps}, hooks {hooks}"
        );
    }
}
