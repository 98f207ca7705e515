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
fn plumb_binary() -> anyhow::Result<PathBuf> {
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

impl Target {
    /// Starts `plumb local` on a fresh data directory and a free port.
    pub async fn embedded() -> anyhow::Result<Target> {
        let binary = plumb_binary()?;
        let data_dir = tempfile::tempdir()?;
        let kubeconfig = data_dir.path().join("kubeconfig");
        let mut child = Command::new(&binary)
            .args(["local", "--port", "0", "--data-dir"])
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
        let cluster = tokio::task::spawn_blocking(|| {
            // etcd fsyncs as in production: the embedded server's writes are durable too.
            plumb_testcluster::TestCluster::start(plumb_testcluster::Options {
                etcd_fsync: true,
                ..Default::default()
            })
        })
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
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig())?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// `kubectl` with this target's kubeconfig: the test cluster's build for both targets,
    /// so both are measured with the same client and a machine needs none on `PATH`.
    pub fn kubectl(&self) -> anyhow::Result<Command> {
        let mut command = match self {
            Target::Real { cluster } => cluster.kubectl(),
            Target::Embedded { .. } => Command::new(plumb_testcluster::binary("kubectl")?),
        };
        command.arg("--kubeconfig").arg(self.kubeconfig());
        Ok(command)
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

    /// Resident memory of the server processes (for the real cluster: apiserver + etcd).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let pids = match self {
            Target::Embedded { child, .. } => vec![child.id()],
            Target::Real { cluster } => pids_mentioning(cluster.dir())?,
        };
        pids.into_iter().map(rss_of).sum()
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
        let is_server = program.ends_with("/etcd") || program.ends_with("/kube-apiserver");
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
