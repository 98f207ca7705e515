use crate::fixture_yaml;
use plumb_engine::health::{self, HealthAssessor, ResourceHealthInput};
use plumb_engine::settings::Settings;
use plumb_model::{HealthStatus, HealthStatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};

fn check_file(file: &str) {
    let assessor = HealthAssessor::new(Settings::default()).expect("assessor");
    let cases = fixture_yaml(file);
    let cases = cases.as_array().expect("a list of cases");
    assert!(!cases.is_empty());
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let actual = assessor.assess(&case["object"]);
        let expected = match &case["expect"] {
            Value::Null => None,
            expect => Some(HealthStatus {
                status: health::parse_status_code(expect["status"].as_str().unwrap_or(""))
                    .unwrap_or_else(|| panic!("{name}: bad expected status")),
                message: expect["message"].as_str().unwrap_or("").to_string(),
            }),
        };
        assert_eq!(actual, expected, "case {name:?} in {file}");
    }
}

#[test]
fn workloads_golden() {
    check_file("health/workloads.yaml");
}

#[test]
fn pods_and_jobs_golden() {
    check_file("health/pods_jobs.yaml");
}

#[test]
fn network_storage_and_apps_golden() {
    check_file("health/network_storage.yaml");
}

#[test]
fn hpa_golden() {
    check_file("health/hpa.yaml");
}

fn input<'a>(
    kind: &'a str,
    live: Option<&'a Value>,
    health: Option<&'a HealthStatus>,
) -> ResourceHealthInput<'a> {
    ResourceHealthInput {
        group: "apps",
        kind,
        live,
        target: None,
        health,
        has_assessment: true,
    }
}

#[test]
fn aggregation_is_worst_wins_with_argo_exceptions() {
    let object = json!({"metadata": {"name": "x"}});
    let healthy = HealthStatus {
        status: HealthStatusCode::Healthy,
        message: String::new(),
    };
    let suspended = HealthStatus {
        status: HealthStatusCode::Suspended,
        message: String::new(),
    };
    let degraded = HealthStatus {
        status: HealthStatusCode::Degraded,
        message: String::new(),
    };
    let app = health::aggregate([
        input("Deployment", Some(&object), Some(&healthy)),
        input("Deployment", Some(&object), Some(&suspended)),
    ]);
    assert_eq!(app.status, HealthStatusCode::Suspended);
    // A missing resource makes the app Missing; a degraded one outranks it.
    let app = health::aggregate([
        input("Deployment", None, None),
        input("Deployment", Some(&object), Some(&healthy)),
    ]);
    assert_eq!(app.status, HealthStatusCode::Missing);
    let app = health::aggregate([
        input("Deployment", None, None),
        input("Deployment", Some(&object), Some(&degraded)),
    ]);
    assert_eq!(app.status, HealthStatusCode::Degraded);
    // Missing kinds without assessment, hooks and ignore-healthcheck do not count.
    let no_assessment = ResourceHealthInput {
        has_assessment: false,
        ..input("ConfigMap", None, None)
    };
    assert_eq!(
        health::aggregate([no_assessment]).status,
        HealthStatusCode::Healthy
    );
    let hook =
        json!({"metadata": {"name": "h", "annotations": {"argocd.argoproj.io/hook": "PreSync"}}});
    let ignored = json!({"metadata": {"name": "i", "annotations": {"argocd.argoproj.io/ignore-healthcheck": "true"}}});
    let app = health::aggregate([
        input("Job", Some(&hook), Some(&degraded)),
        input("Deployment", Some(&ignored), Some(&degraded)),
    ]);
    assert_eq!(app.status, HealthStatusCode::Healthy);
    // A child Application that is Unknown does not make the parent Unknown.
    let child = ResourceHealthInput {
        group: "argoproj.io",
        kind: "Application",
        live: Some(&object),
        target: None,
        health: Some(&HealthStatus {
            status: HealthStatusCode::Unknown,
            message: String::new(),
        }),
        has_assessment: true,
    };
    assert_eq!(health::aggregate([child]).status, HealthStatusCode::Healthy);
}

fn any_code() -> impl Strategy<Value = HealthStatusCode> {
    prop_oneof![
        Just(HealthStatusCode::Healthy),
        Just(HealthStatusCode::Suspended),
        Just(HealthStatusCode::Progressing),
        Just(HealthStatusCode::Missing),
        Just(HealthStatusCode::Degraded),
        Just(HealthStatusCode::Unknown),
    ]
}

proptest! {
    #[test]
    fn aggregate_equals_the_most_severe(codes in proptest::collection::vec(any_code(), 0..20)) {
        let object = json!({"metadata": {"name": "x"}});
        let statuses: Vec<HealthStatus> = codes.iter()
            .map(|code| HealthStatus { status: *code, message: String::new() })
            .collect();
        let app = health::aggregate(statuses.iter().map(|s| input("Deployment", Some(&object), Some(s))));
        let expected = codes.iter().copied().max_by_key(|c| c.severity()).unwrap_or(HealthStatusCode::Healthy);
        prop_assert_eq!(app.status, expected);
    }

    #[test]
    fn deployments_never_panic_and_counts_show_in_messages(
        desired in 0i64..50, updated in 0i64..50, available in 0i64..50, total in 0i64..60,
        generation in 0i64..5, observed in 0i64..5, paused: bool,
    ) {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": desired, "paused": paused},
            "status": {"observedGeneration": observed, "replicas": total,
                       "updatedReplicas": updated, "availableReplicas": available}
        });
        let health = health::builtin_health(&deployment).expect("assessed");
        if health.status == HealthStatusCode::Healthy {
            prop_assert!(!paused && generation <= observed && updated >= desired
                && total <= updated && available >= updated);
        }
    }
}
