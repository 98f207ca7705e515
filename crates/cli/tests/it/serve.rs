//! `plumb serve` on the embedded default, as README's first command runs it: the
//! quickstart app goes Synced and Healthy, follows a commit, comes back after `kubectl
//! delete`; bad Applications get conditions that say why; a kill mid-sync leaves nothing
//! Running. One server for the whole flow (each step builds on the last).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serve {
    child: Child,
    data_dir: PathBuf,
    kubeconfig: PathBuf,
}

impl Serve {
    fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let _ = std::fs::remove_file(data_dir.join("serve.json"));
        let log = std::fs::File::create(data_dir.join("serve.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
            .args([
                "serve",
                "--quickstart",
                "--port",
                "0",
                "--metrics-port",
                "0",
            ])
            // Pods take long enough to start that a sync is seen Running before it ends.
            .args(["--pod-start-delay-ms", "1500", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("PLUMB_LOG", "info,kube_client::client::builder=off")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start plumb serve");
        let mut serve = Self {
            child,
            data_dir: data_dir.to_path_buf(),
            kubeconfig: data_dir.join("kubeconfig"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !data_dir.join("serve.json").exists() {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("plumb serve exited early: {status}\n{}", serve.log());
            }
            assert!(Instant::now() < deadline, "not serving after 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The state cluster's kubeconfig: the embedded server's, or the one `--kubeconfig`
        // named, as serve.json says.
        let endpoints: Value = serde_json::from_slice(
            &std::fs::read(data_dir.join("serve.json")).expect("serve.json"),
        )
        .expect("serve.json parses");
        serve.kubeconfig = endpoints["kubeconfig"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("kubeconfig"));
        serve
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("serve.log")).unwrap_or_default()
    }

    fn kubectl(&self, args: &[&str]) -> std::process::Output {
        let kubectl = plumb_testcluster::binary("kubectl").unwrap_or_else(|e| panic!("{e}"));
        Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    #[track_caller]
    fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    fn apply(&self, yaml: &str) {
        let path = self.data_dir.join("apply.yaml");
        std::fs::write(&path, yaml).expect("write manifest");
        self.kubectl_ok(&["apply", "-f", path.to_str().expect("utf-8")]);
    }

    /// Applies an Application without auto-sync, deploying `path` of `url` to the
    /// namespace named like the app (created by the sync); `extra` goes into `spec`, and
    /// `finalizer` adds the resources finalizer.
    fn apply_manual_app(&self, name: &str, url: &str, path: &str, finalizer: bool, extra: &str) {
        let finalizers = if finalizer {
            "[resources-finalizer.argocd.argoproj.io]"
        } else {
            "[]"
        };
        self.apply(&format!(
            "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: {name}, namespace: argocd, finalizers: {finalizers}}}
spec:
  source: {{repoURL: '{url}', path: {path}}}
  destination: {{server: https://kubernetes.default.svc, namespace: {name}}}
  syncPolicy: {{syncOptions: [CreateNamespace=true]}}
{extra}"
        ));
    }

    /// Asks for a sync by hand, as `argocd app sync` does: an `operation` on the app, by
    /// user "tester", with `sync` as the sync request's JSON.
    #[track_caller]
    fn request_sync(&self, app: &str, sync: &str) {
        let patch = format!(
            r#"{{"operation": {{"initiatedBy": {{"username": "tester"}}, "sync": {sync}}}}}"#
        );
        self.kubectl_ok(&[
            "patch",
            "application",
            app,
            "-n",
            "argocd",
            "--type",
            "merge",
            "-p",
            &patch,
        ]);
    }

    fn app(&self, name: &str) -> Value {
        let output = self.kubectl(&["get", "application", name, "-n", "argocd", "-o", "json"]);
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }

    /// Waits until `check` holds for the Application, showing it (and the log) if not.
    #[track_caller]
    fn wait_app(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let app = self.app(name);
            if check(&app) {
                return app;
            }
            if Instant::now() > deadline {
                panic!(
                    "{name}: {what} not reached in 60 s; status: {}\nlog:\n{}",
                    serde_json::to_string_pretty(&app["status"]).unwrap_or_default(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metrics(&self) -> String {
        let endpoints: Value = serde_json::from_slice(
            &std::fs::read(self.data_dir.join("serve.json")).expect("serve.json"),
        )
        .expect("serve.json parses");
        let url = endpoints["metrics"].as_str().expect("metrics url");
        let address = url
            .trim_start_matches("http://")
            .trim_end_matches("/metrics");
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).expect("connect to metrics");
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read metrics");
        text
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn synced_and_healthy(app: &Value) -> bool {
    app["status"]["sync"]["status"] == "Synced" && app["status"]["health"]["status"] == "Healthy"
}

/// The request is cleared and the recorded operation is over (neither Running nor
/// Terminating).
fn operation_ended(app: &Value) -> bool {
    app.get("operation").is_none()
        && app["status"]["operationState"]["phase"]
            .as_str()
            .is_some_and(|p| p != "Running" && p != "Terminating")
}

fn condition<'a>(app: &'a Value, kind: &str) -> Option<&'a str> {
    app["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["message"].as_str())
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

/// Deletes the quickstart's Deployment with kubectl and waits (up to `limit`) until the
/// controller has created it again.
#[track_caller]
fn delete_and_see_it_healed(serve: &Serve, limit: Duration) {
    serve.kubectl_ok(&["delete", "deployment", "guestbook-ui", "-n", "guestbook"]);
    let deadline = Instant::now() + limit;
    while !serve
        .kubectl(&["get", "deployment", "guestbook-ui", "-n", "guestbook"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "not healed\n{}", serve.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn refresh(serve: &Serve, app: &str) {
    serve.kubectl_ok(&[
        "annotate",
        "--overwrite",
        "application",
        app,
        "-n",
        "argocd",
        "argocd.argoproj.io/refresh=normal",
    ]);
}

#[test]
fn serve_keeps_applications_in_sync() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let serve = Serve::start(data_dir.path(), &[]);
    let repo = data_dir.path().join("quickstart-repo");

    // The quickstart app deploys, and its status reads as Argo CD writes it.
    let app = serve.wait_app("quickstart", "Synced and Healthy", synced_and_healthy);
    let status = &app["status"];
    assert_eq!(status["sourceType"], "Directory", "{status}");
    assert_eq!(status["operationState"]["phase"], "Succeeded", "{status}");
    assert_eq!(status["history"].as_array().map(Vec::len), Some(1));
    assert!(
        status["resources"].as_array().is_some_and(|r| r
            .iter()
            .any(|r| r["kind"] == "Deployment" && r["health"]["status"] == "Healthy")),
        "{status}"
    );
    let first = status["sync"]["revision"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(first.len(), 40, "{status}");

    // A commit is followed (the refresh annotation asks for it now, as `argocd app get
    // --refresh` does) and the annotation is consumed.
    let deployment = repo.join("guestbook/deployment.yaml");
    let text = std::fs::read_to_string(&deployment).expect("read");
    std::fs::write(&deployment, text.replace("replicas: 1", "replicas: 2")).expect("write");
    git(&repo, &["commit", "-q", "-am", "two replicas"]);
    refresh(&serve, "quickstart");
    let app = serve.wait_app("quickstart", "the new revision synced", |app| {
        synced_and_healthy(app) && app["status"]["sync"]["revision"] != first.as_str()
    });
    assert!(
        app["metadata"]["annotations"]
            .get("argocd.argoproj.io/refresh")
            .is_none(),
        "{}",
        app["metadata"]
    );
    let replicas = serve.kubectl_ok(&[
        "get",
        "deployment",
        "guestbook-ui",
        "-n",
        "guestbook",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "2");

    // Self-heal: a deleted Deployment comes back.
    delete_and_see_it_healed(&serve, Duration::from_secs(30));
    serve.wait_app("quickstart", "healed", synced_and_healthy);

    // Metrics with Argo CD's names and labels.
    let metrics = serve.metrics();
    assert!(
        metrics.lines().any(|l| l.starts_with("argocd_app_info{")
            && l.contains("name=\"quickstart\"")
            && l.contains("sync_status=\"Synced\"")
            && l.contains("health_status=\"Healthy\"")),
        "{metrics}"
    );
    assert!(metrics.contains("argocd_app_sync_total{"), "{metrics}");
    assert!(
        metrics.contains("argocd_app_reconcile_bucket{"),
        "{metrics}"
    );
    assert!(metrics.contains("argocd_git_request_total{"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("argocd_cluster_api_resource_objects{") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // Steady state: a refresh of the unchanged app is answered from the live cache and the
    // compare cache, with no request to the cluster (no list, no GET, no dry-run).
    let requests = |metrics: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("argocd_app_k8s_request_total{") && l.contains("name=\"quickstart\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let before = requests(&metrics);
    assert!(
        before > 0,
        "the first compares' requests are counted\n{metrics}"
    );
    for _ in 0..3 {
        refresh(&serve, "quickstart");
        serve.wait_app("quickstart", "the refresh served", |app| {
            app["metadata"]["annotations"]
                .get("argocd.argoproj.io/refresh")
                .is_none()
        });
    }
    let after = requests(&serve.metrics());
    assert_eq!(before, after, "requests for refreshes of an unchanged app");

    // Events on the Application, as `kubectl describe application` shows them.
    let events = serve.kubectl_ok(&[
        "get",
        "events",
        "-n",
        "argocd",
        "--field-selector",
        "involvedObject.name=quickstart",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        events.contains("OperationStarted") && events.contains("OperationCompleted"),
        "{events}"
    );

    // A render that fails only at the new revision: the app keeps its last state.
    std::fs::write(repo.join("guestbook/broken.yaml"), "kind: [unclosed\n").expect("write");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "broken"]);
    refresh(&serve, "quickstart");
    let app = serve.wait_app("quickstart", "ComparisonError", |app| {
        condition(app, "ComparisonError").is_some()
    });
    assert!(
        condition(&app, "ComparisonError").is_some_and(|m| m.contains("broken.yaml")),
        "{}",
        app["status"]["conditions"]
    );
    assert_eq!(app["status"]["health"]["status"], "Healthy");
    assert!(
        serve
            .kubectl(&["get", "deployment", "guestbook-ui", "-n", "guestbook"])
            .status
            .success()
    );
    git(&repo, &["rm", "-q", "guestbook/broken.yaml"]);
    git(&repo, &["commit", "-q", "-m", "fixed"]);
    refresh(&serve, "quickstart");
    serve.wait_app("quickstart", "recovered", |app| {
        synced_and_healthy(app) && condition(app, "ComparisonError").is_none()
    });

    // Invalid specs: each problem is a condition naming the field; nothing is deployed.
    let url = format!("file://{}", repo.display());
    serve.apply(&format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: bad-project, namespace: argocd}}
spec:
  project: nowhere
  source: {{repoURL: '{url}', path: guestbook}}
  destination: {{server: https://kubernetes.default.svc, namespace: bad}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: bad-path, namespace: argocd}}
spec:
  source: {{repoURL: '{url}', path: ../../etc}}
  destination: {{server: https://kubernetes.default.svc, namespace: bad}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: bad-cluster, namespace: argocd}}
spec:
  source: {{repoURL: '{url}', path: guestbook}}
  destination: {{name: nowhere, namespace: bad}}
"
    ));
    for (name, needle) in [
        ("bad-project", "spec.project"),
        ("bad-path", "spec.source.path"),
        ("bad-cluster", "spec.destination"),
    ] {
        let app = serve.wait_app(name, "InvalidSpecError", |app| {
            condition(app, "InvalidSpecError").is_some()
        });
        let message = condition(&app, "InvalidSpecError").unwrap_or_default();
        assert!(message.contains(needle), "{name}: {message}");
    }

    // Many apps on one broken repository: each says so, and the repository is asked once
    // per pass, not once per app.
    let mut many = String::new();
    for i in 0..20 {
        many.push_str(&format!(
            "---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: broken-repo-{i}, namespace: argocd}}
spec:
  source: {{repoURL: 'file:///nonexistent/repo.git', path: app}}
  destination: {{server: https://kubernetes.default.svc, namespace: broken}}
"
        ));
    }
    serve.apply(&many);
    for i in 0..20 {
        serve.wait_app(&format!("broken-repo-{i}"), "ComparisonError", |app| {
            condition(app, "ComparisonError").is_some()
        });
    }
    let metrics = serve.metrics();
    let failed: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("argocd_git_request_total{") && l.contains("file:///nonexistent/repo.git")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        (1..=2).contains(&failed),
        "{failed} ls-remotes for 20 apps on one repository\n{metrics}"
    );

    // Manual sync: the app says why it waits, then an operation syncs it.
    serve.apply_manual_app("manual", &url, "guestbook", true, "");
    let app = serve.wait_app("manual", "SyncBlocked", |app| {
        condition(app, "SyncBlocked").is_some()
    });
    assert!(
        condition(&app, "SyncBlocked").is_some_and(|m| m.contains("auto-sync is off")),
        "{}",
        app["status"]
    );
    assert_eq!(app["status"]["sync"]["status"], "OutOfSync");
    serve.request_sync("manual", r#"{"prune": true}"#);
    let app = serve.wait_app("manual", "synced by hand", |app| {
        synced_and_healthy(app) && app.get("operation").is_none()
    });
    assert_eq!(
        app["status"]["operationState"]["operation"]["initiatedBy"]["username"],
        "tester"
    );
    assert!(
        condition(&app, "SyncBlocked").is_none(),
        "{}",
        app["status"]
    );

    // Killed mid-sync: the restarted controller resumes the operation; nothing stays Running.
    // Two waves keep the sync running while wave 0's Deployment becomes Healthy.
    std::fs::create_dir_all(repo.join("slow")).expect("mkdir");
    std::fs::write(
        repo.join("slow/all.yaml"),
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: slow, annotations: {argocd.argoproj.io/sync-wave: '0'}}
spec:
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec: {containers: [{name: c, image: nginx:1.27}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: after-slow, annotations: {argocd.argoproj.io/sync-wave: '1'}}
data: {a: b}
",
    )
    .expect("write");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "slow"]);
    serve.apply_manual_app("slow", &url, "slow", false, "  revisionHistoryLimit: 1\n");
    // Revisions resolved within the last minute are shared: a refresh asks Git again.
    refresh(&serve, "slow");
    serve.wait_app("slow", "compared", |app| {
        app["status"]["sync"]["status"] == "OutOfSync"
    });
    serve.request_sync("slow", "{}");
    serve.wait_app("slow", "a running operation", |app| {
        app["status"]["operationState"]["phase"] == "Running"
    });
    serve.kill();
    let serve = Serve::start(data_dir.path(), &[]);
    let app = serve.wait_app("slow", "the operation finished after a restart", |app| {
        operation_ended(app)
    });
    assert_eq!(
        app["status"]["operationState"]["phase"], "Succeeded",
        "{}",
        app["status"]
    );
    serve.wait_app("slow", "Synced and Healthy", synced_and_healthy);
    assert_eq!(
        serve.kubectl_ok(&[
            "get",
            "configmap",
            "after-slow",
            "-n",
            "slow",
            "-o",
            "jsonpath={.data.a}",
        ]),
        "b"
    );

    // Deleting with the resources finalizer deletes what the app deployed, then the app.
    serve.kubectl_ok(&[
        "delete",
        "application",
        "manual",
        "-n",
        "argocd",
        "--wait=false",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let gone = !serve
            .kubectl(&["get", "application", "manual", "-n", "argocd"])
            .status
            .success();
        let deployment_gone = !serve
            .kubectl(&["get", "deployment", "guestbook-ui", "-n", "manual"])
            .status
            .success();
        if gone && deployment_gone {
            break;
        }
        assert!(Instant::now() < deadline, "not finalized\n{}", serve.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Another app's resources were left alone.
    assert!(
        serve
            .kubectl(&["get", "deployment", "guestbook-ui", "-n", "guestbook"])
            .status
            .success()
    );

    private_repository_through_secrets(&serve, &repo);
    stuck_operations_terminate_and_delete(&serve, &repo);
}

/// A repository behind basic auth: refused without credentials, and with a wrong password
/// (the message names the repository, never the password); a `repo-creds` template with the
/// right one is picked up from its Secret without a restart, and the app syncs.
fn private_repository_through_secrets(serve: &Serve, repo: &Path) {
    use plumb_testcluster::servers::{GitHttpServer, HTTP_PASSWORD, HTTP_USER};
    let server = GitHttpServer::start().unwrap_or_else(|e| panic!("{e}"));
    let bare = server.repos().join("private.git");
    git(
        repo,
        &[
            "clone",
            "-q",
            "--bare",
            ".",
            bare.to_str().expect("utf-8 path"),
        ],
    );
    // plumb fetches partially (`--filter`); the server must allow it.
    for (key, value) in [
        ("uploadpack.allowFilter", "true"),
        ("uploadpack.allowAnySHA1InWant", "true"),
    ] {
        git(&bare, &["config", key, value]);
    }
    let url = server.private_url("private");
    serve.apply(&format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: private, namespace: argocd}}
spec:
  source: {{repoURL: '{url}', path: guestbook}}
  destination: {{server: https://kubernetes.default.svc, namespace: private}}
  syncPolicy: {{automated: {{}}, syncOptions: [CreateNamespace=true]}}
"
    ));
    let refused = |app: &Value| {
        condition(app, "ComparisonError").is_some_and(|m| m.contains("authentication failed"))
    };
    let app = serve.wait_app("private", "refused without credentials", refused);
    assert!(
        condition(&app, "ComparisonError").is_some_and(|m| m.contains(&url)),
        "{}",
        app["status"]["conditions"]
    );
    // An Argo CD repository Secret of `kind` (`repository` or `repo-creds`).
    let repo_secret = |name: &str, kind: &str, url: &str, user: &str, password: &str| {
        format!(
            "apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: argocd
  labels: {{argocd.argoproj.io/secret-type: {kind}}}
stringData: {{url: '{url}', username: '{user}', password: '{password}'}}
"
        )
    };
    let wrong = "not-the-password";
    serve.apply(&repo_secret(
        "private-repo",
        "repository",
        &url,
        HTTP_USER,
        wrong,
    ));
    refresh(serve, "private");
    let app = serve.wait_app("private", "refused with a wrong password", |app| {
        refused(app)
            && app["metadata"]["annotations"]
                .get("argocd.argoproj.io/refresh")
                .is_none()
    });
    assert!(
        !app.to_string().contains(wrong) && !serve.log().contains(wrong),
        "the password leaked"
    );
    // The repository Secret now carries no credentials, so the template's apply.
    let template = format!("http://127.0.0.1:{}/private/", server.port);
    serve.apply(&format!(
        "{}---\n{}",
        repo_secret("private-repo", "repository", &url, "", ""),
        repo_secret(
            "local-creds",
            "repo-creds",
            &template,
            HTTP_USER,
            HTTP_PASSWORD
        )
    ));
    serve.wait_app("private", "synced from the private repository", |app| {
        synced_and_healthy(app) && condition(app, "ComparisonError").is_none()
    });
    assert!(!serve.log().contains(HTTP_PASSWORD), "the password leaked");
}

/// An operation stuck on a wave that never becomes healthy ends when terminated ("Operation
/// terminated", the request cleared); an app deleted while its sync is stuck is deleted with
/// its resources.
fn stuck_operations_terminate_and_delete(serve: &Serve, repo: &Path) {
    std::fs::create_dir_all(repo.join("stuck")).expect("mkdir");
    std::fs::write(
        repo.join("stuck/all.yaml"),
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: never-ready, annotations: {argocd.argoproj.io/sync-wave: '0'}}
spec:
  selector: {matchLabels: {app: never-ready}}
  template:
    metadata: {labels: {app: never-ready, testcluster.plumb.dev/failure: image-pull}}
    spec: {containers: [{name: c, image: nginx:1.27}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: after-stuck, annotations: {argocd.argoproj.io/sync-wave: '1'}}
data: {a: b}
",
    )
    .expect("write");
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "stuck"]);
    let url = format!("file://{}", repo.display());
    for name in ["terminated", "deleted"] {
        serve.apply_manual_app(name, &url, "stuck", true, "");
        refresh(serve, name);
        serve.wait_app(name, "compared", |app| {
            app["status"]["sync"]["status"] == "OutOfSync"
        });
        serve.request_sync(name, "{}");
        serve.wait_app(name, "stuck on wave 0", |app| {
            app["status"]["operationState"]["phase"] == "Running"
                && app["status"]["operationState"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("healthy"))
        });
    }

    serve.kubectl_ok(&[
        "patch",
        "application",
        "terminated",
        "-n",
        "argocd",
        "--type",
        "merge",
        "-p",
        r#"{"status": {"operationState": {"phase": "Terminating"}}}"#,
    ]);
    let app = serve.wait_app("terminated", "the operation terminated", |app| {
        app.get("operation").is_none() && app["status"]["operationState"]["phase"] == "Failed"
    });
    assert!(
        app["status"]["operationState"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("terminated")),
        "{}",
        app["status"]["operationState"]
    );
    assert!(
        !serve
            .kubectl(&["get", "configmap", "after-stuck", "-n", "terminated"])
            .status
            .success(),
        "wave 1 was written after the terminate"
    );

    serve.kubectl_ok(&[
        "delete",
        "application",
        "deleted",
        "-n",
        "argocd",
        "--wait=false",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while serve
        .kubectl(&["get", "application", "deleted", "-n", "argocd"])
        .status
        .success()
        || serve
            .kubectl(&["get", "deployment", "never-ready", "-n", "deleted"])
            .status
            .success()
    {
        assert!(
            Instant::now() < deadline,
            "deleted mid-sync, not finalized\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Killed with SIGKILL while a sync runs, twenty times over: every restart finds the
/// operation and finishes it (never left Running, the request cleared), and what each
/// round's revision declares is all there — no wave half-written and forgotten.
#[test]
fn serve_killed_mid_sync_twenty_times() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut serve = Serve::start(data_dir.path(), &[]);
    let repo = data_dir.path().join("quickstart-repo");
    let url = format!("file://{}", repo.display());
    let write_round = |round: usize| {
        std::fs::create_dir_all(repo.join("rounds")).expect("mkdir");
        // The Deployment's template changes each round, so wave 0 rolls out (and waits for
        // its new Pod) before wave 1 is written.
        std::fs::write(
            repo.join("rounds/all.yaml"),
            format!(
                "apiVersion: apps/v1
kind: Deployment
metadata: {{name: rolling, annotations: {{argocd.argoproj.io/sync-wave: '0'}}}}
spec:
  selector: {{matchLabels: {{app: rolling}}}}
  template:
    metadata: {{labels: {{app: rolling}}, annotations: {{round: '{round}'}}}}
    spec: {{containers: [{{name: c, image: nginx:1.27}}]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: round, annotations: {{argocd.argoproj.io/sync-wave: '1'}}}}
data: {{round: '{round}'}}
"
            ),
        )
        .expect("write");
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", &format!("round {round}")]);
    };
    write_round(0);
    serve.apply_manual_app(
        "rounds",
        &url,
        "rounds",
        false,
        "  revisionHistoryLimit: 30\n",
    );
    let mut killed_running = 0;
    for round in 1..=20 {
        write_round(round);
        let head = {
            let output = Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(&repo)
                .output()
                .expect("git rev-parse");
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        };
        serve.request_sync("rounds", &format!(r#"{{"revision": "{head}"}}"#));
        // Kill at a different point each round: as soon as the operation is seen running,
        // or a little later, in the middle of wave 0's rollout.
        serve.wait_app("rounds", "a running operation", |app| {
            app["status"]["operationState"]["phase"] == "Running"
                && app["status"]["operationState"]["operation"]["sync"]["revision"] == head.as_str()
        });
        std::thread::sleep(Duration::from_millis(100 * (round as u64 % 8)));
        if serve.app("rounds")["status"]["operationState"]["phase"] == "Running" {
            killed_running += 1;
        }
        serve.kill();
        serve = Serve::start(data_dir.path(), &[]);
        let app = serve.wait_app("rounds", "the operation finished after a restart", |app| {
            operation_ended(app)
                && app["status"]["operationState"]["operation"]["sync"]["revision"] == head.as_str()
        });
        assert_eq!(
            app["status"]["operationState"]["phase"], "Succeeded",
            "round {round}: {}",
            app["status"]["operationState"]
        );
        // The operation's own revision (the app's status compares with its target
        // revision as last resolved, which may lag a fresh commit by the memo's lifetime).
        assert_eq!(
            app["status"]["operationState"]["syncResult"]["revision"], head,
            "round {round}: {}",
            app["status"]["operationState"]
        );
        for (kind, path) in [
            ("configmap/round", "{.data.round}"),
            (
                "deployment/rolling",
                "{.spec.template.metadata.annotations.round}",
            ),
        ] {
            assert_eq!(
                serve.kubectl_ok(&[
                    "get",
                    kind,
                    "-n",
                    "rounds",
                    "-o",
                    &format!("jsonpath={path}")
                ]),
                round.to_string(),
                "round {round}: {kind}"
            );
        }
    }
    assert!(
        killed_running >= 15,
        "only {killed_running} of 20 kills hit a running operation"
    );
    let app = serve.wait_app("rounds", "Synced and Healthy", synced_and_healthy);
    let history = app["status"]["history"].as_array().map(Vec::len);
    assert_eq!(history, Some(20), "{}", app["status"]["history"]);
}

/// A second embedded API server (`plumb local`) as the destination of an Application, by
/// name through an Argo CD cluster Secret (bearer token, CA data): the app deploys there;
/// when that server goes away the app says so (ComparisonError naming it, connection status
/// 0) and, once it is back on the same address, recovers on its own, without a refresh.
#[test]
fn serve_destination_lost_and_back() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let remote_dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let start_remote = || {
        let _ = std::fs::remove_file(remote_dir.path().join("kubeconfig"));
        let child = Command::new(env!("CARGO_BIN_EXE_plumb"))
            .args(["local", "--port", &port.to_string(), "--data-dir"])
            .arg(remote_dir.path())
            .args(["--pod-start-delay-ms", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start plumb local");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !remote_dir.path().join("kubeconfig").exists() {
            assert!(Instant::now() < deadline, "plumb local did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    };
    let mut remote = start_remote();
    let serve = Serve::start(data_dir.path(), &[]);
    let server = format!("https://127.0.0.1:{port}");
    let token = std::fs::read_to_string(remote_dir.path().join("token")).expect("token");
    let ca = std::fs::read(remote_dir.path().join("ca.crt")).expect("ca.crt");
    let config = serde_json::json!({
        "bearerToken": token.trim(),
        "tlsClientConfig": {"caData": base64_encode(&ca)},
    });
    serve.apply(&format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: second-cluster
  namespace: argocd
  labels: {{argocd.argoproj.io/secret-type: cluster}}
stringData:
  name: second
  server: {server}
  config: '{config}'
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: remote, namespace: argocd}}
spec:
  source: {{repoURL: 'file://{repo}', path: guestbook}}
  destination: {{name: second, namespace: remote}}
  syncPolicy: {{automated: {{}}, syncOptions: [CreateNamespace=true]}}
",
        repo = data_dir.path().join("quickstart-repo").display()
    ));
    serve.wait_app(
        "remote",
        "Synced and Healthy on the second cluster",
        synced_and_healthy,
    );
    let remote_kubectl = |args: &[&str]| {
        let kubectl = plumb_testcluster::binary("kubectl").unwrap_or_else(|e| panic!("{e}"));
        Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(remote_dir.path().join("kubeconfig"))
            .args(args)
            .output()
            .expect("run kubectl")
    };
    assert!(
        remote_kubectl(&["get", "deployment", "guestbook-ui", "-n", "remote"])
            .status
            .success(),
        "deployed to the second cluster"
    );
    let connection = |serve: &Serve| {
        serve
            .metrics()
            .lines()
            .find(|l| {
                l.starts_with("argocd_cluster_connection_status{")
                    && l.contains(&format!("server=\"{server}\""))
            })
            .and_then(|l| l.rsplit(' ').next().map(str::to_string))
    };

    let _ = remote.kill();
    let _ = remote.wait();
    refresh(&serve, "remote");
    let app = serve.wait_app("remote", "ComparisonError for the lost cluster", |app| {
        condition(app, "ComparisonError").is_some()
    });
    assert!(
        condition(&app, "ComparisonError")
            .is_some_and(|m| m.contains(&format!("127.0.0.1:{port}"))),
        "{}",
        app["status"]["conditions"]
    );
    assert_eq!(connection(&serve).as_deref(), Some("0"));
    // The controller goes on with the other apps meanwhile.
    serve.wait_app("quickstart", "unaffected", synced_and_healthy);

    let mut remote = start_remote();
    serve.wait_app("remote", "recovered on its own", |app| {
        condition(app, "ComparisonError").is_none() && synced_and_healthy(app)
    });
    assert_eq!(connection(&serve).as_deref(), Some("1"));
    let _ = remote.kill();
    let _ = remote.wait();

    settings_reload_live(&serve);
    app_of_apps(&serve, &data_dir.path().join("quickstart-repo"));
}

/// An Application whose path holds another Application: the child is created by the
/// parent's sync, reconciled like any app, and its health rolls up into the parent's.
fn app_of_apps(serve: &Serve, repo: &Path) {
    std::fs::create_dir_all(repo.join("apps")).expect("mkdir");
    std::fs::write(
        repo.join("apps/child.yaml"),
        format!(
            "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: child, namespace: argocd}}
spec:
  source: {{repoURL: 'file://{repo}', path: guestbook}}
  destination: {{server: https://kubernetes.default.svc, namespace: child}}
  syncPolicy: {{automated: {{}}, syncOptions: [CreateNamespace=true]}}
",
            repo = repo.display()
        ),
    )
    .expect("write");
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "app of apps"]);
    serve.apply(&format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: parent, namespace: argocd}}
spec:
  source: {{repoURL: 'file://{repo}', path: apps}}
  destination: {{server: https://kubernetes.default.svc, namespace: argocd}}
  syncPolicy: {{automated: {{prune: true}}}}
",
        repo = repo.display()
    ));
    serve.wait_app(
        "child",
        "created by the parent and Synced and Healthy",
        synced_and_healthy,
    );
    let parent = serve.wait_app("parent", "Synced and Healthy", synced_and_healthy);
    assert!(
        parent["status"]["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| {
                r["kind"] == "Application"
                    && r["name"] == "child"
                    && r["health"]["status"] == "Healthy"
            })),
        "{}",
        parent["status"]["resources"]
    );
    assert!(
        serve
            .kubectl(&["get", "deployment", "guestbook-ui", "-n", "child"])
            .status
            .success(),
        "the child deployed its own resources"
    );
}

/// `argocd-cm` is read live: a map that does not parse keeps the settings in force (and
/// says so in the log); a health customization applies to the running apps at once and
/// goes away with its key.
fn settings_reload_live(serve: &Serve) {
    let argocd_cm = |data: &str| {
        format!(
            "apiVersion: v1
kind: ConfigMap
metadata: {{name: argocd-cm, namespace: argocd}}
data:
{data}"
        )
    };
    let degraded = "  resource.customizations.health.apps_Deployment: |
    return {status = 'Degraded', message = 'by argocd-cm'}
";
    // An unknown tracking method makes the map invalid as a whole; a duration that does not
    // parse falls back to its default, with a warning naming it.
    let broken = "  application.resourceTrackingMethod: sideways\n";
    serve.apply(&argocd_cm(&format!(
        "  timeout.reconciliation: banana\n{degraded}{broken}"
    )));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !serve.log().contains("argocd-cm is not valid") {
        assert!(
            Instant::now() < deadline,
            "no word of the bad map\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    refresh(serve, "quickstart");
    let app = serve.wait_app("quickstart", "refreshed under the old settings", |app| {
        app["metadata"]["annotations"]
            .get("argocd.argoproj.io/refresh")
            .is_none()
    });
    assert_eq!(
        app["status"]["health"]["status"], "Healthy",
        "{}",
        app["status"]
    );

    serve.apply(&argocd_cm(&format!(
        "  timeout.reconciliation: banana\n{degraded}"
    )));
    let app = serve.wait_app("quickstart", "Degraded by the customization", |app| {
        app["status"]["health"]["status"] == "Degraded"
    });
    assert!(
        app["status"]["resources"].as_array().is_some_and(|r| r
            .iter()
            .any(|r| { r["kind"] == "Deployment" && r["health"]["message"] == "by argocd-cm" })),
        "{}",
        app["status"]["resources"]
    );
    assert!(
        serve
            .log()
            .contains("timeout.reconciliation: \"banana\" is not valid"),
        "the bad duration is named in the log"
    );
    serve.apply(&argocd_cm("  {}\n").replace("data:\n  {}", "data: {}"));
    serve.wait_app("quickstart", "Healthy again", |app| {
        app["status"]["health"]["status"] == "Healthy"
    });
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `plumb serve --kubeconfig` with the real test cluster (kube-apiserver, etcd,
/// kube-controller-manager, kube-scheduler, kwok) as state store and `in-cluster`
/// destination: the CRDs, the `argocd` namespace and the default project are installed
/// there, the quickstart app goes Synced and Healthy on kwok's nodes, and a Deployment
/// deleted with kubectl comes back.
#[test]
fn serve_on_the_real_test_cluster() {
    let cluster = crate::support::cluster();
    let data_dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = cluster.kubeconfig_path().to_string_lossy().to_string();
    let serve = Serve::start(data_dir.path(), &["--kubeconfig", &kubeconfig]);
    assert_eq!(serve.kubeconfig.to_string_lossy(), kubeconfig);
    serve.kubectl_ok(&[
        "get",
        "crd",
        "applications.argoproj.io",
        "appprojects.argoproj.io",
    ]);
    serve.kubectl_ok(&["get", "appproject", "default", "-n", "argocd"]);
    let app = serve.wait_app(
        "quickstart",
        "Synced and Healthy on the real cluster",
        synced_and_healthy,
    );
    assert_eq!(app["status"]["operationState"]["phase"], "Succeeded");
    delete_and_see_it_healed(&serve, Duration::from_secs(60));
    serve.wait_app(
        "quickstart",
        "healed on the real cluster",
        synced_and_healthy,
    );
}
