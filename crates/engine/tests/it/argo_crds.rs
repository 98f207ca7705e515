//! Argo CD's Application and AppProject CRDs as plumb generates them from its model
//! (`crates/model/crds/`, kept equal to `plumb_model::crd` by a golden test), on the real
//! test cluster and (through `embedded`) on plumb's embedded API server:
//!
//! * the CRDs install and become Established;
//! * every Application and AppProject of the seeds (`fixtures/argocd/seeds`) and the
//!   documentation-style examples (`fixtures/argocd/docs`: multi-source with `ref`, Helm,
//!   Kustomize, directory/Jsonnet, sync policy, fields plumb does not model, a status, a
//!   project) apply unchanged with kubectl, read back with nothing pruned, and parse as the
//!   model's types;
//! * `kubectl explain` describes `spec.source` and `spec.syncWindows` with the model's
//!   doc comments;
//! * wrongly typed fields are refused with a 422 that names the field.
//!
//! Seed 001 also holds an Application fragment under "Image Update Automation" with only
//! `metadata.annotations` (no name, no spec): no server can store it, so it is not a
//! fixture.

use crate::cluster::{RealCluster, Target};
use plumb_engine::cluster::ClusterError;
use plumb_model::{AppProject, Application};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The namespace Argo CD's documentation (and the seeds) put Applications in.
const ARGOCD_NAMESPACE: &str = "argocd";

fn crd_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model/crds")
        .join(file)
}

/// The Application/AppProject fixtures, seeds first, sorted by file name.
fn fixture_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["argocd/seeds", "argocd/docs"] {
        let dir = crate::fixture_path(dir);
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Installs both CRDs with `kubectl apply` (as a user would), waits until they are
/// Established, and creates the `argocd` namespace. Idempotent, so the tests sharing the
/// real cluster may each call it; `lock` serialises them so two first applies do not race
/// to create the same CRD.
fn install(target: &impl Target, lock: &Mutex<()>) {
    let _guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for file in ["application-crd.yaml", "appproject-crd.yaml"] {
        let out = target
            .kubectl(&["apply", "-f", path_str(&crd_path(file))])
            .unwrap_or_else(|e| panic!("kubectl apply -f {file}: {e}"));
        assert!(out.contains("customresourcedefinition"), "{out}");
    }
    target
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/applications.argoproj.io",
            "crd/appprojects.argoproj.io",
        ])
        .unwrap_or_else(|e| panic!("CRDs not Established: {e}"));
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": ARGOCD_NAMESPACE}});
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), namespace.to_string()).expect("write");
    target
        .kubectl(&["apply", "-f", path_str(file.path())])
        .unwrap_or_else(|e| panic!("namespace {ARGOCD_NAMESPACE}: {e}"));
}

/// Paths (`spec.source.helm.valuesObject.tolerations`) where `live` lacks or changes what
/// `applied` has. The server may add (metadata, the last-applied annotation), never drop.
fn missing(applied: &Value, live: &Value, path: &str, out: &mut Vec<String>) {
    match (applied, live) {
        (Value::Object(applied), Value::Object(live)) => {
            for (key, value) in applied {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match live.get(key) {
                    Some(live_value) => missing(value, live_value, &here, out),
                    None => out.push(format!("{here}: pruned")),
                }
            }
        }
        (Value::Array(applied), Value::Array(live)) if applied.len() == live.len() => {
            for (i, (a, l)) in applied.iter().zip(live).enumerate() {
                missing(a, l, &format!("{path}[{i}]"), out);
            }
        }
        (a, l) if a == l => {}
        (a, l) => out.push(format!("{path}: applied {a}, read back {l}")),
    }
}

/// Applies every fixture with kubectl, reads each back, and checks nothing was pruned or
/// changed and that the model reads it.
fn fixtures_apply_unchanged(target: &impl Target) {
    let mut failures = Vec::new();
    for path in fixture_files() {
        let text = std::fs::read_to_string(&path).expect("fixture");
        let applied: Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let kind = applied["kind"].as_str().expect("kind");
        let name = applied["metadata"]["name"].as_str().expect("name");
        let namespace = applied["metadata"]["namespace"]
            .as_str()
            .expect("namespace");
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .expect("file name");
        if let Err(e) = target.kubectl(&["apply", "-f", path_str(&path)]) {
            failures.push(format!("{file}: kubectl apply: {e}"));
            continue;
        }
        let resource = format!("{}.argoproj.io", kind.to_lowercase());
        let text = target
            .kubectl(&["get", &resource, name, "-n", namespace, "-o", "json"])
            .unwrap_or_else(|e| panic!("{file}: kubectl get: {e}"));
        let live: Value = serde_json::from_str(&text).expect("json");
        let mut lost = Vec::new();
        missing(&applied, &live, "", &mut lost);
        failures.extend(lost.into_iter().map(|l| format!("{file}: {l}")));
        let parsed = match kind {
            "Application" => serde_json::from_value::<Application>(live).map(|_| ()),
            "AppProject" => serde_json::from_value::<AppProject>(live).map(|_| ()),
            other => panic!("{file}: unexpected kind {other}"),
        };
        if let Err(e) = parsed {
            failures.push(format!("{file}: the model does not read it back: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `kubectl explain`, retried while the server is still publishing the new schema (the
/// real kube-apiserver updates its OpenAPI document asynchronously after Established).
fn explain(target: &impl Target, field: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match target.kubectl(&["explain", field]) {
            Ok(out) => return out,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => panic!("kubectl explain {field}: {e}"),
        }
    }
}

/// The schema node of `crd` at a dotted property path.
fn schema_at<'a>(crd: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        |node, step| match step {
            "[]" => &node["items"],
            name => &node["properties"][name],
        },
    )
}

/// The first words of a description: what survives kubectl's line wrapping on one line.
fn opening(description: &str) -> String {
    description
        .split_whitespace()
        .take(4)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `kubectl explain` of `field` names every property of the schema at `schema_path` and
/// prints its description (and the field's own).
fn assert_explains(target: &impl Target, field: &str, crd: &Value, schema_path: &str) {
    let out = explain(target, field);
    let node = schema_at(crd, schema_path);
    let own = node["description"].as_str().expect("description");
    assert!(out.contains(&opening(own)), "{field}: no {own:?} in\n{out}");
    let properties = node
        .get("properties")
        .or_else(|| node["items"].get("properties"))
        .and_then(Value::as_object)
        .expect("properties");
    for (name, property) in properties {
        assert!(
            out.lines()
                .any(|line| line.trim_start().starts_with(&format!("{name}\t"))
                    || line.trim_start().starts_with(&format!("{name} "))),
            "{field}: field {name} not listed in\n{out}"
        );
        if let Some(description) = property["description"].as_str() {
            assert!(
                out.contains(&opening(description)),
                "{field}.{name}: no {description:?} in\n{out}"
            );
        }
    }
}

pub(crate) fn argo_crds_accept_seeds_and_documented_examples_on(
    target: &impl Target,
    lock: &Mutex<()>,
) {
    install(target, lock);
    fixtures_apply_unchanged(target);
    let application = plumb_model::crd::application_crd();
    let project = plumb_model::crd::app_project_crd();
    assert_explains(
        target,
        "applications.spec.source",
        &application,
        "spec.source",
    );
    assert_explains(
        target,
        "appprojects.spec.syncWindows",
        &project,
        "spec.syncWindows",
    );
    // The short names and printer columns are Argo CD's.
    let table = target
        .kubectl(&["get", "apps", "-n", ARGOCD_NAMESPACE, "-o", "wide"])
        .expect("get apps");
    // The CRD's columns are the whole table after NAME (no AGE, as kube-apiserver serves a
    // CRD that declares columns), and a column whose path finds nothing is blank.
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "SYNC STATUS",
            "HEALTH STATUS",
            "REVISION",
            "PROJECT"
        ],
        "{table}"
    );
    let orders = table
        .lines()
        .find(|line| line.starts_with("orders "))
        .unwrap_or_else(|| panic!("no orders row: {table}"));
    assert_eq!(
        orders.split_whitespace().collect::<Vec<_>>(),
        ["orders", "default"],
        "an Application without status shows blank status cells: {table}"
    );
    let guestbook = table
        .lines()
        .find(|line| line.starts_with("guestbook "))
        .unwrap_or_else(|| panic!("no guestbook row: {table}"));
    for cell in [
        "OutOfSync",
        "Progressing",
        "53e28ff20cc530b9ada2173fbbd64d48338583ba",
        "default",
    ] {
        assert!(guestbook.contains(cell), "{cell} missing: {guestbook}");
    }
    let projects = target
        .kubectl(&["get", "appproj", "-n", ARGOCD_NAMESPACE, "-o", "name"])
        .expect("get appproj");
    assert!(
        projects.contains("appproject.argoproj.io/payments")
            && projects.contains("appproject.argoproj.io/footanalytics"),
        "{projects}"
    );
}

/// An object of `kind` whose `spec` is `spec`.
fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": kind,
           "metadata": {"name": name, "namespace": ARGOCD_NAMESPACE}, "spec": spec})
}

fn application(name: &str, mut spec: Value) -> Value {
    let defaults = json!({"project": "default",
        "source": {"repoURL": "https://git.example.com/a.git", "path": "."},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "a"}});
    for (key, value) in defaults.as_object().expect("object") {
        spec.as_object_mut()
            .expect("spec")
            .entry(key.clone())
            .or_insert_with(|| value.clone());
    }
    object("Application", name, spec)
}

pub(crate) async fn argo_crds_refuse_wrong_types_on(target: &impl Target, lock: &Mutex<()>) {
    install(target, lock);
    let engine = target.engine().await;
    // (object, the field named in the refusal, the type the schema wants there)
    let cases = [
        (
            application(
                "bad-retry-limit",
                json!({"syncPolicy": {"retry": {"limit": "five"}}}),
            ),
            "spec.syncPolicy.retry.limit",
            "integer",
        ),
        (
            application(
                "bad-source",
                json!({"source": "https://git.example.com/a.git"}),
            ),
            "spec.source",
            "object",
        ),
        (
            application(
                "bad-sync-options",
                json!({"syncPolicy": {"syncOptions": "CreateNamespace=true"}}),
            ),
            "spec.syncPolicy.syncOptions",
            "array",
        ),
        (
            application(
                "bad-prune",
                json!({"syncPolicy": {"automated": {"prune": "yes"}}}),
            ),
            "spec.syncPolicy.automated.prune",
            "boolean",
        ),
        (
            object(
                "AppProject",
                "bad-windows",
                json!({"syncWindows": "allow 0 8 * * *"}),
            ),
            "spec.syncWindows",
            "array",
        ),
    ];
    for (object, field, expected_type) in cases {
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        // The API answers 422 Invalid and names the field and the type it wants.
        match engine.create(&object, true, false).await {
            Err(ClusterError::Api { code, message, .. }) => {
                assert_eq!(code, 422, "{name}: {message}");
                assert!(
                    message.contains(field) && message.contains(expected_type),
                    "{name}: {message}"
                );
            }
            other => panic!("{name}: created or failed otherwise: {other:?}"),
        }
        // kubectl (what users run) reports the same.
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), object.to_string()).expect("write");
        let error = target
            .kubectl(&["apply", "-f", path_str(file.path())])
            .expect_err("kubectl apply of a wrongly typed object");
        assert!(
            error.contains("is invalid") && error.contains(field),
            "{name}: {error}"
        );
    }
    // An object where a list belongs is different: with strict field validation (what
    // kubectl and plumb ask for) its keys are unknown fields, refused with 400 before the
    // schema's types are checked, by kube-apiserver as by the embedded server.
    let windows_object = object(
        "AppProject",
        "bad-windows-object",
        json!({"syncWindows": {"kind": "allow"}}),
    );
    match engine.create(&windows_object, true, false).await {
        Err(ClusterError::Api { code, message, .. }) => {
            assert_eq!(code, 400, "{message}");
            assert!(
                message.contains("unknown field \"spec.syncWindows.kind\""),
                "{message}"
            );
        }
        other => panic!("created or failed otherwise: {other:?}"),
    }
}

/// The real cluster is shared by the tests of this binary; this serialises their installs.
static REAL_INSTALL: Mutex<()> = Mutex::new(());

#[test]
fn argo_crds_accept_seeds_and_documented_examples() {
    argo_crds_accept_seeds_and_documented_examples_on(&RealCluster, &REAL_INSTALL);
}

#[tokio::test(flavor = "multi_thread")]
async fn argo_crds_refuse_wrong_types() {
    argo_crds_refuse_wrong_types_on(&RealCluster, &REAL_INSTALL).await;
}
