//! Starting servers and running clients against them.

use std::path::{Path, PathBuf};

use http_body_util::BodyExt as _;
use plumb_apiserver::{Config, RunningServer};

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub server: Option<RunningServer>,
    pub kubeconfig: PathBuf,
}

/// The test cluster's kubectl (1.37, built by `scripts/build-testcluster`). Never one on
/// `PATH`: the tests must not depend on what a machine happens to have installed.
pub fn testcluster_kubectl() -> String {
    plumb_testcluster::binary("kubectl")
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string_lossy()
        .into_owned()
}

/// The kubectl binary the tests drive: `PLUMB_KUBECTL` when set (to try another version by
/// hand), else the test cluster's.
pub fn kubectl_bin() -> String {
    std::env::var("PLUMB_KUBECTL").unwrap_or_else(|_| testcluster_kubectl())
}

pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub async fn kubectl_with(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt as _;
    let mut cmd = tokio::process::Command::new(kubectl_bin());
    // A cache per server: kubectl's default cache is keyed by host:port, and ports are
    // reused by later servers with other resources.
    let cache = kubeconfig
        .parent()
        .unwrap_or(Path::new("."))
        .join("kubectl-cache");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.env_remove("KUBECONFIG");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", kubectl_bin()));
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().await.expect("kubectl runs");
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, tune).await
    }

    pub async fn start_in(dir: tempfile::TempDir, tune: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::new(
            dir.path().join("data"),
            "127.0.0.1:0".parse().expect("addr"),
        );
        // API semantics are tested on a quiet server: the workload controllers write in
        // the background (they register the node and make it Ready), which tests that check
        // that a refused request wrote nothing (the resourceVersion did not move) cannot
        // tell apart.
        // The workload tests turn them on.
        config.workloads.enabled = false;
        // The real test cluster's service range, so that cases compare like for like.
        config.service_cidr = plumb_apiserver::ServiceCidr::parse("10.0.0.0/24").expect("CIDR");
        tune(&mut config);
        let server = plumb_apiserver::start(config).await.expect("server starts");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .expect("kubeconfig written");
        TestServer {
            dir,
            server: Some(server),
            kubeconfig,
        }
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    /// Stops the server and returns the directory (to restart on it).
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        self.dir
    }

    pub async fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_with(&self.kubeconfig, args, None).await
    }

    /// Runs kubectl and returns stdout; panics with stderr on failure.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// Like [`TestServer::ok`] with a manifest on stdin.
    pub async fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = kubectl_with(&self.kubeconfig, args, Some(stdin)).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// Runs kubectl that must fail; returns stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            !out.ok,
            "kubectl {args:?} should have failed but printed:\n{}",
            out.stdout
        );
        out.stderr
    }

    pub async fn client(&self) -> kube::Client {
        let yaml = self.server().kubeconfig_yaml();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    }

    /// A raw request: (status code, body as JSON or string).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let client = self.client().await;
        raw_with(&client, method, path, content_type, body).await
    }

    /// `GET path` (JSON), as [`TestServer::raw`].
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.raw("GET", path, "application/json", vec![]).await
    }
}

pub async fn raw_with(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body))
        .expect("request");
    let res = client.send(req).await.expect("request sent");
    let code = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (code, value)
}

/// The fixtures directory.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures")
        .join(name)
}
