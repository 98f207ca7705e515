//! `plumb diff` and `plumb sync` against the real test cluster, checked with kubectl.

use crate::support::{assert_exit_code, cluster, kubectl_jsonpath, local_target_args};
use crate::{plumb, stderr, stdout};
use plumb_testcluster::{FAILURE_LABEL, Failure};
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example.invalid/web:1}]}
";

fn secret(password: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData: {{password: {password}}}\n"
    )
}

fn run(command: &str, target: &[&str], extra: &[&str]) -> std::process::Output {
    let mut args = vec![command];
    args.extend_from_slice(target);
    args.extend_from_slice(extra);
    plumb(&args)
}

#[test]
fn diff_and_sync_exit_codes_and_output() {
    let cluster = cluster();
    let ns = cluster.namespace("cli-sync").expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "deployment.yaml", DEPLOYMENT);
    write(
        dir.path(),
        "configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n",
    );
    write(dir.path(), "secret.yaml", &secret("s3cr3t-first"));
    let dir_text = dir.path().to_str().expect("utf-8");
    let kubeconfig = cluster.kubeconfig_path().to_str().expect("utf-8");
    let target = local_target_args(dir_text, "cli-app", kubeconfig, &ns);

    let output = run("diff", &target, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(&format!("===== apps/Deployment {ns}/web ======")),
        "{text}"
    );
    assert!(
        !text.contains("s3cr3t-first") && !text.contains("czNjcjN0LWZpcnN0"),
        "{text}"
    );

    let output = run("sync", &target, &["--timeout", "2m"]);
    assert_exit_code(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("Operation:   Succeeded"), "{text}");
    assert!(text.contains("Health:      Healthy"), "{text}");
    assert!(!text.contains("s3cr3t-first"), "{text}");
    let tracking = kubectl_jsonpath(
        "configmap",
        "settings",
        &ns,
        "{.metadata.annotations.argocd\\.argoproj\\.io/tracking-id}",
    );
    assert_eq!(tracking, format!("cli-app:/ConfigMap:{ns}/settings"));

    let output = run("diff", &target, &[]);
    assert_exit_code(&output, 0);

    // A changed Secret value shows as a change, masked.
    write(dir.path(), "secret.yaml", &secret("s3cr3t-second"));
    let output = run("diff", &target, &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("password") && text.contains("++++++++"),
        "{text}"
    );
    assert!(!text.contains("s3cr3t"), "{text}");

    // A removed file requires pruning; sync without --prune leaves it, with --prune removes it.
    std::fs::remove_file(dir.path().join("configmap.yaml")).expect("rm");
    let output = run("diff", &target, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("(requires pruning)"),
        "{}",
        stdout(&output)
    );
    // Pruning is pending, so the app never becomes Synced: the sync waits out its timeout.
    let output = run("sync", &target, &["--timeout", "5s"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "not synced while pruning is pending: {}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("ignored (requires pruning)"),
        "{}",
        stdout(&output)
    );
    let output = run("sync", &target, &["--prune", "--timeout", "1m"]);
    assert_exit_code(&output, 0);
    assert!(
        cluster
            .kubectl_output(&["get", "configmap", "settings", "-n", &ns])
            .is_err()
    );

    // --dry-run writes nothing.
    write(
        dir.path(),
        "extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
    );
    let output = run("sync", &target, &["--dry-run"]);
    assert_exit_code(&output, 0);
    assert!(stdout(&output).contains("(dry run)"));
    assert!(
        cluster
            .kubectl_output(&["get", "configmap", "extra", "-n", &ns])
            .is_err()
    );

    // Selective sync applies only the named resource.
    let output = run(
        "sync",
        &target,
        &["--resource", ":ConfigMap:extra", "--no-wait-healthy"],
    );
    assert_exit_code(&output, 0);
    assert!(
        cluster
            .kubectl_output(&["get", "configmap", "extra", "-n", &ns])
            .is_ok()
    );
}

#[test]
fn missing_namespace_diff_shows_new_objects_and_sync_refuses() {
    let cluster = cluster();
    // A name derived from a fresh test namespace: unique, and not created by anyone.
    let base = cluster.namespace("cli-absent").expect("namespace");
    let ns = format!("{base}-absent");
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "deployment.yaml", DEPLOYMENT);
    write(dir.path(), "secret.yaml", &secret("s3cr3t-absent"));
    let dir_text = dir.path().to_str().expect("utf-8");
    let kubeconfig = cluster.kubeconfig_path().to_str().expect("utf-8");
    let target = local_target_args(dir_text, "cli-absent", kubeconfig, &ns);

    // diff: the objects would be created, so they show as new and the exit code is 1.
    let output = run("diff", &target, &[]);
    assert_exit_code(&output, 1);
    let text = stdout(&output);
    for header in [
        format!("===== apps/Deployment {ns}/web ======"),
        format!("===== /Secret {ns}/db ======"),
    ] {
        assert!(text.contains(&header), "{header} missing in:\n{text}");
    }
    assert!(text.contains("+kind: Deployment"), "{text}");
    assert!(!text.contains("s3cr3t-absent"), "{text}");
    assert!(
        !stderr(&output).contains("not found"),
        "{}",
        stderr(&output)
    );

    // sync without CreateNamespace: the dry-run fails with the server's reason, nothing
    // is written (not even the namespace).
    let output = run("sync", &target, &["--timeout", "1m"]);
    let both = format!("{}{}", stdout(&output), stderr(&output));
    assert_ne!(output.status.code(), Some(0), "{both}");
    assert!(
        both.contains(&format!("namespaces \"{ns}\" not found")),
        "{both}"
    );
    assert!(
        cluster.kubectl_output(&["get", "namespace", &ns]).is_err(),
        "sync created namespace {ns}"
    );
}

#[test]
fn unhealthy_app_exits_1_unless_not_waiting() {
    let cluster = cluster();
    let ns = cluster.namespace("cli-unhealthy").expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = DEPLOYMENT.replace(
        "labels: {app: web}}",
        &format!(
            "labels: {{app: web, {FAILURE_LABEL}: {}}}}}",
            Failure::ImagePull.label_value()
        ),
    );
    write(dir.path(), "deployment.yaml", &broken);
    let dir_text = dir.path().to_str().expect("utf-8");
    let kubeconfig = cluster.kubeconfig_path().to_str().expect("utf-8");
    let target = local_target_args(dir_text, "cli-broken", kubeconfig, &ns);
    let output = run("sync", &target, &["--no-wait-healthy"]);
    assert_exit_code(&output, 0);
    let output = run("sync", &target, &["--timeout", "8s"]);
    assert_exit_code(&output, 1);
    assert!(
        stdout(&output).contains("Health:      Progressing"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn errors_exit_2_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    let dir_text = dir.path().to_str().expect("utf-8");
    let missing = dir.path().join("no-kubeconfig");
    let output = run(
        "diff",
        &local_target_args(dir_text, "a", missing.to_str().expect("utf-8"), "default"),
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no-kubeconfig"),
        "{}",
        stderr(&output)
    );

    let unreachable = dir.path().join("kubeconfig");
    write(
        dir.path(),
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    );
    let output = run(
        "diff",
        &local_target_args(
            dir_text,
            "a",
            unreachable.to_str().expect("utf-8"),
            "default",
        ),
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unreachable"),
        "{}",
        stderr(&output)
    );
    let output = run(
        "sync",
        &local_target_args(
            dir_text,
            "a",
            unreachable.to_str().expect("utf-8"),
            "default",
        ),
        &["--sync-option", "Replace=perhaps"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("Replace"), "{}", stderr(&output));

    let output = run(
        "diff",
        &local_target_args(
            "/nonexistent/plumb",
            "a",
            unreachable.to_str().expect("utf-8"),
            "default",
        ),
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not a directory"),
        "{}",
        stderr(&output)
    );
}

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

#[test]
fn sync_from_a_git_repository_then_diff_is_clean() {
    let cluster = cluster();
    let ns = cluster.namespace("cli-repo").expect("namespace");
    let repo = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(repo.path().join("app")).expect("mkdir");
    write(
        &repo.path().join("app"),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-git}\ndata: {a: b}\n",
    );
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "app"]);
    let cache = tempfile::tempdir().expect("cache");
    let url = format!("file://{}", repo.path().display());
    let kubeconfig = cluster.kubeconfig_path().to_str().expect("utf-8");
    let run = |command: &str, extra: &[&str]| {
        let mut args = vec![
            command,
            "--repo",
            &url,
            "--revision",
            "main",
            "--path",
            "app",
            "--app",
            "from-git",
            "--kubeconfig",
            kubeconfig,
            "--dest-namespace",
            &ns,
            "--no-color",
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_plumb"))
            .args(&args)
            .env("XDG_CACHE_HOME", cache.path())
            .env("PLUMB_LOG", "warn")
            .output()
            .expect("run plumb")
    };
    let output = run("diff", &[]);
    assert_exit_code(&output, 1);
    assert!(stdout(&output).contains("from-git"), "{}", stdout(&output));
    let output = run("sync", &["--timeout", "1m"]);
    assert_exit_code(&output, 0);
    let output = run("diff", &[]);
    assert_exit_code(&output, 0);
    let data = kubectl_jsonpath("configmap", "from-git", &ns, "{.data.a}");
    assert_eq!(data, "b");
}
