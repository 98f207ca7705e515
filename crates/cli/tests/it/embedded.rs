//! README's workflow on the embedded default: `plumb local` serves the API, and `plumb diff`
//! / `plumb sync` (create the namespace, prune) work against it as against a real cluster.

use crate::support::{assert_exit_code, local_target_args};
use crate::{plumb, stdout};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `plumb local` on a free port and a fresh data directory, stopped when dropped.
struct EmbeddedServer {
    child: Child,
    kubeconfig: PathBuf,
    _data_dir: tempfile::TempDir,
}

impl EmbeddedServer {
    fn start() -> Self {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = data_dir.path().join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_plumb"))
            .args(["local", "--port", "0", "--data-dir"])
            .arg(data_dir.path())
            .env("PLUMB_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start plumb local");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("plumb local exited early: {status}");
            }
            assert!(Instant::now() < deadline, "no kubeconfig after 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            kubeconfig,
            _data_dir: data_dir,
        }
    }

    /// The test cluster's kubectl (never one from `PATH`), against this server.
    fn kubectl(&self, args: &[&str]) -> std::process::Output {
        let kubectl = plumb_testcluster::binary("kubectl").unwrap_or_else(|e| panic!("{e}"));
        Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write manifest");
}

#[test]
fn diff_sync_and_prune_against_the_embedded_server() {
    let server = EmbeddedServer::start();
    let kubeconfig = server.kubeconfig.to_str().expect("utf-8");
    let source = tempfile::tempdir().expect("tempdir");
    let dir = source.path().to_str().expect("utf-8");
    write(
        source.path(),
        "settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n",
    );
    write(
        source.path(),
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: s3cret-embedded}\n",
    );
    write(
        source.path(),
        "service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}], selector: {app: web}}\n",
    );
    let target = local_target_args(dir, "demo", kubeconfig, "demo");
    let run = |command: &str, extra: &[&str]| {
        let mut args = vec![command];
        args.extend_from_slice(&target);
        args.extend_from_slice(extra);
        plumb(&args)
    };

    // Nothing deployed yet: different, and the namespace does not exist.
    assert_exit_code(&run("diff", &[]), 1);
    let synced = run("sync", &["--sync-option", "CreateNamespace=true"]);
    assert_exit_code(&synced, 0);
    assert!(
        !stdout(&synced).contains("s3cret-embedded"),
        "{}",
        stdout(&synced)
    );
    let mode = server.kubectl(&[
        "get",
        "configmap",
        "settings",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.mode}",
    ]);
    assert_eq!(String::from_utf8_lossy(&mode.stdout), "fast");
    assert_exit_code(&run("diff", &[]), 0);

    // A drift made with kubectl shows, and a sync heals it.
    let patched = server.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"slow"}}"#,
    ]);
    assert!(patched.status.success(), "{patched:?}");
    let drift = run("diff", &[]);
    assert_exit_code(&drift, 1);
    assert!(stdout(&drift).contains("slow"), "{}", stdout(&drift));
    assert_exit_code(&run("sync", &[]), 0);
    assert_exit_code(&run("diff", &[]), 0);

    // The Service and the Secret leave Git: they require pruning, and `--prune` deletes
    // them (a Service's delete answers the object, a Secret's a Status, as on kube-apiserver).
    std::fs::remove_file(source.path().join("service.yaml")).expect("remove");
    std::fs::remove_file(source.path().join("secret.yaml")).expect("remove");
    let diff = run("diff", &[]);
    assert_exit_code(&diff, 1);
    assert!(
        stdout(&diff).contains("/Service demo/web"),
        "{}",
        stdout(&diff)
    );
    let pruned = run("sync", &["--prune"]);
    assert_exit_code(&pruned, 0);
    assert!(stdout(&pruned).contains("Pruned"), "{}", stdout(&pruned));
    for (kind, name) in [("service", "web"), ("secret", "db")] {
        let gone = server.kubectl(&["get", kind, name, "-n", "demo"]);
        assert!(!gone.status.success(), "{kind} still there: {gone:?}");
    }
    assert_exit_code(&run("diff", &[]), 0);
}
