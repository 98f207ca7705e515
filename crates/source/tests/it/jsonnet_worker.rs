//! Jsonnet in worker processes: a runaway evaluation is killed at the deadline (the process is
//! gone afterwards), a memory bomb is stopped by the worker's memory limit, cancellation kills
//! the worker, deep recursion is an error, other renders go on meanwhile, and the worker
//! itself refuses files and libs outside the repository.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use plumb_model::application::{DirectorySource, JsonnetSource};
use plumb_source::SourceService;
use tokio_util::sync::CancellationToken;

use crate::servers::Repo;
use crate::{cm, names, request, service_with, source};

/// Live processes running the worker binary whose working directory (the checkout the
/// worker evaluates in) is under `under`.
fn workers_under(under: &Path) -> Vec<u32> {
    let worker = PathBuf::from(env!("CARGO_BIN_EXE_plumb-jsonnet-worker"))
        .canonicalize()
        .expect("worker binary");
    let under = under.canonicalize().expect("dir");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let proc = PathBuf::from(format!("/proc/{pid}"));
            std::fs::read_link(proc.join("exe")).is_ok_and(|exe| exe == worker)
                && std::fs::read_link(proc.join("cwd")).is_ok_and(|cwd| cwd.starts_with(&under))
        })
        .collect()
}

/// Waits until a worker runs under `under` and returns its pid.
async fn wait_for_worker(under: &Path) -> u32 {
    for _ in 0..400 {
        if let Some(pid) = workers_under(under).first() {
            return *pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "no jsonnet worker process appeared under {}",
        under.display()
    );
}

const SLOW: &str = "std.foldl(function(acc, x) acc + x, std.range(1, 1000000000), 0)";
const BOMB: &str = "local grow(s, n) = if n == 0 then s else grow(s + s, n - 1);\n\
                    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { n: std.length(grow('x', 40)) } }";
const RECURSION: &str = "local f(x) = f(x + 1) + 1;\nf(0)";

fn runaway_repo(root: &Path) -> Repo {
    let repo = Repo::create(root, "runaway-jsonnet");
    repo.commit(
        &[
            ("slow/main.jsonnet", SLOW),
            ("bomb/main.jsonnet", BOMB),
            ("recursion/main.jsonnet", RECURSION),
            (
                "fine/main.jsonnet",
                "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'from-jsonnet' } }",
            ),
            ("fine/cm.yaml", &cm("plain")),
        ],
        "runaway",
    );
    repo
}

#[tokio::test]
async fn a_runaway_jsonnet_evaluation_is_killed_at_the_deadline() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = runaway_repo(root.path());
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_with(dir.path(), |c| {
        c.render.tool_timeout = Duration::from_secs(3);
    });
    let cancel = CancellationToken::new();
    let url = repo.file_url();

    // The runaway render, a watcher that finds its worker, and another app rendered meanwhile.
    let slow_request = request(vec![source(&url, "main", "slow")]);
    let slow = svc.render(&slow_request, &cancel);
    let watch = wait_for_worker(dir.path());
    let other = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        svc.render(&request(vec![source(&url, "main", "fine")]), &cancel)
            .await
    };
    let (slow, pid, other) = tokio::join!(slow, watch, other);
    let err = slow.expect_err("runaway");
    let text = err.to_string();
    assert!(
        text.contains("slow/main.jsonnet")
            && text.contains("did not finish within 3s")
            && text.contains("killed"),
        "{text}"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "worker {pid} is still there after the render failed"
    );
    assert!(workers_under(dir.path()).is_empty());
    let other = other.expect("other apps unaffected");
    assert_eq!(names(&other), ["ConfigMap/plain", "ConfigMap/from-jsonnet"]);
    // Only the good render was cached.
    assert_eq!(svc.cache_stats().entries, 1);

    // Cancellation kills the worker too.
    let cancel_slow = CancellationToken::new();
    let render = svc.render(&slow_request, &cancel_slow);
    let cancel_soon = async {
        let pid = wait_for_worker(dir.path()).await;
        cancel_slow.cancel();
        pid
    };
    let (result, pid) = tokio::join!(render, cancel_soon);
    let err = result.expect_err("cancelled");
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "worker {pid}");
    assert_eq!(svc.cache_stats().entries, 1);
}

#[tokio::test]
async fn a_jsonnet_memory_bomb_is_stopped_and_deep_recursion_is_an_error() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = runaway_repo(root.path());
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_with(dir.path(), |c| {
        c.render.jsonnet_memory_limit = 512 * 1024 * 1024;
        c.render.tool_timeout = Duration::from_secs(60);
    });
    let cancel = CancellationToken::new();
    let url = repo.file_url();

    let text = render_failure(&svc, &url, "bomb", &cancel).await;
    assert!(
        text.contains("bomb/main.jsonnet") && text.contains("memory limit of 512 MiB"),
        "{text}"
    );

    let text = render_failure(&svc, &url, "recursion", &cancel).await;
    assert!(
        text.contains("recursion/main.jsonnet") && text.contains("stack overflow"),
        "{text}"
    );
    assert_eq!(svc.cache_stats().entries, 0);
    assert!(workers_under(dir.path()).is_empty());

    let fine = svc
        .render(&request(vec![source(&url, "main", "fine")]), &cancel)
        .await
        .expect("other apps unaffected");
    assert_eq!(names(&fine), ["ConfigMap/plain", "ConfigMap/from-jsonnet"]);
}

/// What rendering `path` of `url` at `main` fails with, as text.
async fn render_failure(
    svc: &SourceService,
    url: &str,
    path: &str,
    cancel: &CancellationToken,
) -> String {
    svc.render(&request(vec![source(url, "main", path)]), cancel)
        .await
        .expect_err(path)
        .to_string()
}

/// Runs the worker binary on one raw request.
fn ask_worker(request: &str) -> serde_json::Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plumb-jsonnet-worker"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{:?}", out.status);
    serde_json::from_slice(&out.stdout).expect("json answer")
}

/// The parent checks libs and paths before it starts a worker; the worker checks them again
/// itself, so a request that skipped the parent cannot read the host either.
#[test]
fn the_worker_itself_refuses_files_libs_and_imports_outside_the_repository() {
    let repo = tempfile::tempdir().expect("tmp");
    let root = repo.path().join("repo");
    std::fs::create_dir_all(root.join("lib")).expect("mkdir");
    std::fs::write(
        root.join("main.jsonnet"),
        "local l = import 'helper.libsonnet';\nfunction(n) { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: std.extVar('env') + l.suffix + n } }",
    )
    .expect("write");
    std::fs::write(root.join("lib/helper.libsonnet"), "{ suffix: '-lib-' }").expect("write");
    std::fs::write(root.join("escape.jsonnet"), "importstr '/etc/hostname'").expect("write");
    let root_json = serde_json::to_string(&root).expect("json");

    let ok = ask_worker(&format!(
        r#"{{"root": {root_json}, "file": "main.jsonnet", "jsonnet": {{"extVars": [{{"name": "env", "value": "prod"}}], "tlas": [{{"name": "n", "value": "1 + 2", "code": true}}], "libs": ["lib"]}}}}"#
    ));
    assert_eq!(ok["ok"]["metadata"]["name"], "prod-lib-3", "{ok}");

    for (request, kind, why) in [
        (
            format!(r#"{{"root": {root_json}, "file": "../../etc/passwd"}}"#),
            "path",
            "leaves the repository",
        ),
        (
            format!(r#"{{"root": {root_json}, "file": "/etc/passwd"}}"#),
            "path",
            "absolute",
        ),
        (
            format!(
                r#"{{"root": {root_json}, "file": "main.jsonnet", "jsonnet": {{"libs": ["../.."]}}}}"#
            ),
            "path",
            "leaves the repository",
        ),
        (
            format!(r#"{{"root": {root_json}, "file": "escape.jsonnet"}}"#),
            "jsonnet",
            "outside the repository",
        ),
        ("not json".to_string(), "request", "malformed"),
    ] {
        let answer = ask_worker(&request);
        assert_eq!(answer["error"]["kind"], kind, "{request}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{request}: {message}");
    }
}

/// Without a worker, Jsonnet still renders in-process (the fallback for embedders that
/// configure none).
#[tokio::test]
async fn without_a_worker_jsonnet_renders_in_process() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = runaway_repo(root.path());
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_with(dir.path(), |c| c.render.jsonnet_worker = None);
    let cancel = CancellationToken::new();
    let mut src = source(&repo.file_url(), "main", "fine");
    src.directory = Some(DirectorySource {
        jsonnet: Some(JsonnetSource::default()),
        ..Default::default()
    });
    let rendered = svc
        .render(&request(vec![src]), &cancel)
        .await
        .expect("in-process");
    assert_eq!(
        names(&rendered),
        ["ConfigMap/plain", "ConfigMap/from-jsonnet"]
    );
}
