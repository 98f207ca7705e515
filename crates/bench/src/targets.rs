//! The API servers a scenario measures: plumb's embedded server as a `plumb local` child
//! process, and the real kube-apiserver + etcd of the test cluster as the baseline.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub enum Target {
    Embedded {
        child: Child,
        kubeconfig: PathBuf,
        _data_dir: tempfile::TempDir,
    },
    Real {
        cluster: plumb_testcluster::TestCluster,
    },
}

/// The `plumb` binary next to this harness, built first so it is never stale.
pub fn plumb_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("harness binary has no directory")?;
    let profile_is_release = dir.ends_with("release");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "-q", "-p", "plumb"]);
    if profile_is_release {
        build.arg("--release");
    }
    let status = build.status().context("running cargo build -p plumb")?;
    anyhow::ensure!(status.success(), "cargo build -p plumb failed");
    Ok(dir.join("plumb"))
}

/// The test cluster's `kubectl` (built by `scripts/build-testcluster` with the same version
/// as its kube-apiserver) with `--kubeconfig`: every kubectl the harness runs is this one,
/// never the one on PATH, so both sides of a comparison run the same client binary.
pub fn kubectl(kubeconfig: &Path) -> anyhow::Result<Command> {
    let binary = plumb_testcluster::binary("kubectl")
        .context("the test cluster's kubectl (scripts/build-testcluster builds it)")?;
    let mut command = Command::new(binary);
    // No KUBECONFIG from the environment: only the flag decides the server.
    command.env_remove("KUBECONFIG");
    command.arg("--kubeconfig").arg(kubeconfig);
    Ok(command)
}

/// `kubectl version --client` of that kubectl, for the scenario's log.
pub fn kubectl_client_version() -> anyhow::Result<String> {
    let binary = plumb_testcluster::binary("kubectl")?;
    let output = Command::new(&binary)
        .args(["version", "--client"])
        .output()
        .with_context(|| format!("running {binary:?} version --client"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .lines()
        .find_map(|line| line.strip_prefix("Client Version: "))
        .unwrap_or("unknown version");
    Ok(format!("{} ({})", binary.display(), version.trim()))
}

fn wait_for_file(path: &Path, child: &mut Child, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("plumb local exited early with {status}");
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "plumb local did not write {path:?} in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Options of every real cluster the harness starts: etcd fsyncs every write, as in
/// production and as plumb's store fsyncs every batch, so both sides pay for durability.
/// (The test cluster's default is `--unsafe-no-fsync`, which tests want and benchmarks
/// must not have.)
pub fn durable_cluster_options() -> plumb_testcluster::Options {
    plumb_testcluster::Options {
        etcd_fsync: true,
        ..Default::default()
    }
}

impl Target {
    /// Starts `plumb local` on a fresh data directory and a free port.
    pub async fn embedded() -> anyhow::Result<Target> {
        Self::embedded_with(&[]).await
    }

    /// Starts `plumb local` with extra arguments (e.g. `--pod-start-delay-ms`).
    pub async fn embedded_with(extra: &[&str]) -> anyhow::Result<Target> {
        let binary = plumb_binary()?;
        let data_dir = tempfile::tempdir()?;
        let kubeconfig = data_dir.path().join("kubeconfig");
        let mut child = Command::new(&binary)
            .args(["local", "--port", "0"])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {binary:?} local"))?;
        wait_for_file(&kubeconfig, &mut child, Duration::from_secs(30))?;
        Ok(Target::Embedded {
            child,
            kubeconfig,
            _data_dir: data_dir,
        })
    }

    /// Starts the real test cluster (kube-apiserver + etcd, no workloads).
    pub async fn real() -> anyhow::Result<Target> {
        Self::real_with(durable_cluster_options()).await
    }

    /// Starts the real test cluster with these options.
    pub async fn real_with(options: plumb_testcluster::Options) -> anyhow::Result<Target> {
        let cluster =
            tokio::task::spawn_blocking(move || plumb_testcluster::TestCluster::start(options))
                .await?
                .context("starting the real test cluster (scripts/build-testcluster builds it)")?;
        Ok(Target::Real { cluster })
    }

    pub fn label(&self) -> &'static str {
        match self {
            Target::Embedded { .. } => "plumb embedded",
            Target::Real { .. } => "kube-apiserver+etcd",
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        match self {
            Target::Embedded { kubeconfig, .. } => kubeconfig.clone(),
            Target::Real { cluster } => cluster.kubeconfig_path().to_path_buf(),
        }
    }

    /// A new client with its own connection pool.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        client_for(&self.kubeconfig()).await
    }

    /// `kubectl` with this target's kubeconfig: the test cluster's kubectl for both targets,
    /// so a comparison never depends on which kubectl is on PATH.
    pub fn kubectl(&self) -> anyhow::Result<Command> {
        kubectl(&self.kubeconfig())
    }

    /// Creates a fresh namespace named after the scenario.
    pub async fn namespace(&self, prefix: &str) -> anyhow::Result<String> {
        let name = format!("bench-{prefix}");
        let api = Api::<Namespace>::all(self.client().await?);
        let namespace = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &namespace).await?;
        Ok(name)
    }

    /// Resident memory of the server processes (for the real cluster: kube-apiserver + etcd,
    /// and with workloads kube-controller-manager, kube-scheduler and kwok).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let pids = match self {
            Target::Embedded { child, .. } => vec![child.id()],
            Target::Real { cluster } => pids_mentioning(cluster.dir())?,
        };
        pids.into_iter().map(rss_of).sum()
    }

    /// The embedded server's process id (`None` for the real cluster's several processes).
    pub fn embedded_pid(&self) -> Option<u32> {
        match self {
            Target::Embedded { child, .. } => Some(child.id()),
            Target::Real { .. } => None,
        }
    }

    pub async fn stop(self) {
        match self {
            Target::Embedded { mut child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Target::Real { cluster } => cluster.stop(),
        }
    }
}

/// A new client for the cluster a kubeconfig file names (its current context).
pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .context("VmRSS missing")?;
    Ok(kib * 1024)
}

/// Processes whose command line mentions `dir`: the test cluster's etcd and kube-apiserver
/// keep their data and certificates there.
fn pids_mentioning(dir: &Path) -> anyhow::Result<Vec<u32>> {
    let needle = dir.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let program = cmdline.split('\0').next().unwrap_or("");
        // With workloads, the controllers and the fake kubelet count too.
        let is_server = [
            "/etcd",
            "/kube-apiserver",
            "/kube-controller-manager",
            "/kube-scheduler",
            "/kwok",
        ]
        .iter()
        .any(|name| program.ends_with(name));
        if is_server && cmdline.contains(&needle) {
            pids.push(pid);
        }
    }
    anyhow::ensure!(
        !pids.is_empty(),
        "no server process of the test cluster found"
    );
    Ok(pids)
}
