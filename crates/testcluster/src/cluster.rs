//! Starting and using one disposable cluster.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::processes::{ProcessGroup, log_tail};
use crate::{Error, binaries, pki};

/// The kwok configuration: lease heartbeats plus plumb's node and pod stages.
const KWOK_CONFIG: &str = include_str!("kwok-stages.yaml");

/// The annotation kwok manages fake nodes by.
const FAKE_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// How often start-up polls for readiness.
const POLL: Duration = Duration::from_millis(200);

/// The cluster's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// etcd, the store.
    Etcd,
    /// kube-apiserver.
    ApiServer,
    /// kube-controller-manager (workloads only).
    ControllerManager,
    /// kube-scheduler (workloads only).
    Scheduler,
    /// kwok, the fake-node controller (workloads only).
    Kwok,
}

impl Component {
    /// The binary's (and log file's) name.
    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Kwok => "kwok",
        }
    }
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Also run kube-controller-manager, kube-scheduler and kwok with fake nodes, so that
    /// Deployments roll out, Jobs complete, garbage collection and namespace deletion happen.
    pub workloads: bool,
    /// How many fake nodes (`kwok-node-0`, ...) when `workloads` is on.
    pub nodes: usize,
    /// A fixed port for kube-apiserver instead of a free one (an error if it is taken).
    pub apiserver_port: Option<u16>,
    /// A fixed client port for etcd instead of a free one (an error if it is taken).
    pub etcd_port: Option<u16>,
    /// Extra command-line arguments for a component (appended last, so they win).
    pub extra_args: Vec<(Component, String)>,
    /// Let etcd fsync its writes, as a production cluster does. Off by default: tests do not
    /// need durability across power loss and fsync makes every write slow.
    pub etcd_fsync: bool,
    /// Use binaries from this directory instead of finding/building them.
    pub bin_dir: Option<PathBuf>,
    /// How long each start-up step (etcd, API server ready, nodes ready) may take.
    pub step_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workloads: false,
            nodes: 1,
            apiserver_port: None,
            etcd_port: None,
            extra_args: Vec::new(),
            etcd_fsync: false,
            bin_dir: None,
            step_timeout: Duration::from_secs(120),
        }
    }
}

impl Options {
    /// Options with workload simulation on.
    pub fn with_workloads() -> Self {
        Options {
            workloads: true,
            ..Options::default()
        }
    }
}

/// A running cluster. Dropping it stops every component and removes its temporary directory;
/// if the process dies instead, the supervisor does the same.
pub struct TestCluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    server_url: String,
    bin_dir: PathBuf,
    workloads: bool,
    nodes: Vec<String>,
    namespaces_created: AtomicU32,
    group: ProcessGroup,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("server_url", &self.server_url)
            .field("kubeconfig", &self.kubeconfig)
            .field("workloads", &self.workloads)
            .finish_non_exhaustive()
    }
}

impl TestCluster {
    /// Starts a cluster and waits until it is ready (blocking; fine to call from async code
    /// on a multi-threaded runtime). A port that another process grabbed between our choice
    /// and the component's bind is retried with new ports.
    pub fn start(options: Options) -> Result<TestCluster, Error> {
        let bin_dir = match &options.bin_dir {
            Some(dir) => {
                binaries::check_dir(dir)?;
                dir.clone()
            }
            None => binaries::bin_dir()?,
        };
        const ATTEMPTS: u32 = 3;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(&options, &bin_dir) {
                Err(e @ Error::ComponentExited { .. }) if lost_port_race(&e) => {
                    if attempt == ATTEMPTS {
                        return Err(Error::PortsKeptColliding {
                            attempts: attempt,
                            last: Box::new(e),
                        });
                    }
                    eprintln!("plumb-testcluster: {e}\nplumb-testcluster: retrying with new ports");
                }
                other => return other,
            }
        }
    }

    fn start_once(options: &Options, bin_dir: &Path) -> Result<TestCluster, Error> {
        let dir = tempfile::Builder::new()
            .prefix("plumb-testcluster-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "creating a temporary directory".into(),
                source,
            })?
            .keep();
        let log_dir = dir.join("logs");
        let pki_dir = dir.join("pki");
        for d in [&log_dir, &pki_dir] {
            std::fs::create_dir_all(d).map_err(|source| Error::Io {
                what: format!("creating {}", d.display()),
                source,
            })?;
        }
        // From here on the supervisor owns the directory: it is removed with the processes.
        let group = ProcessGroup::new(&log_dir, &dir)?;
        let pki = pki::generate(&pki_dir)?;

        let etcd_port = port(options.etcd_port, Component::Etcd)?;
        let etcd_peer_port = port(None, Component::Etcd)?;
        let apiserver_port = port(options.apiserver_port, Component::ApiServer)?;
        let extra = |component: Component| -> Vec<String> {
            options
                .extra_args
                .iter()
                .filter(|(c, _)| *c == component)
                .map(|(_, a)| a.clone())
                .collect()
        };

        let mut etcd = Command::new(bin_dir.join("etcd"));
        let client_url = format!("http://127.0.0.1:{}", etcd_port);
        let peer_url = format!("http://127.0.0.1:{}", etcd_peer_port);
        etcd.arg("--name=default")
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .arg("--log-level=warn");
        if !options.etcd_fsync {
            etcd.arg("--unsafe-no-fsync");
        }
        etcd.args(extra(Component::Etcd));
        group.spawn(Component::Etcd.name(), etcd)?;
        wait_until(
            options.step_timeout,
            "etcd to accept connections",
            &group,
            || {
                TcpStream::connect(("127.0.0.1", etcd_port))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )?;

        let server_url = format!("https://127.0.0.1:{}", apiserver_port);
        let mut apiserver = Command::new(bin_dir.join("kube-apiserver"));
        apiserver
            .arg(format!("--etcd-servers={client_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            // A loopback address cannot be published as the kubernetes Service endpoint.
            .arg("--endpoint-reconciler-type=none")
            .arg(format!("--secure-port={}", apiserver_port))
            .arg(format!("--cert-dir={}", pki_dir.display()))
            .arg(format!("--tls-cert-file={}", pki.serving_cert.display()))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.serving_key.display()
            ))
            .arg(format!("--client-ca-file={}", pki.ca_cert.display()))
            .arg(format!(
                "--service-account-key-file={}",
                pki.service_account_public_key.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki.service_account_key.display()
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--authorization-mode=RBAC")
            .arg("--allow-privileged=true")
            .arg("--profiling=false")
            .args(extra(Component::ApiServer));
        group.spawn(Component::ApiServer.name(), apiserver)?;

        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, pki::kubeconfig(&pki, &server_url)).map_err(|source| {
            Error::Io {
                what: format!("writing {}", kubeconfig.display()),
                source,
            }
        })?;
        let kubectl_bin = bin_dir.join("kubectl");
        wait_until(
            options.step_timeout,
            "kube-apiserver /readyz",
            &group,
            || {
                run_kubectl(&kubectl_bin, &kubeconfig, &["get", "--raw", "/readyz"])
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )?;

        let mut cluster = TestCluster {
            dir: dir.clone(),
            kubeconfig: kubeconfig.clone(),
            server_url,
            bin_dir: bin_dir.to_path_buf(),
            workloads: options.workloads,
            nodes: Vec::new(),
            namespaces_created: AtomicU32::new(0),
            group,
        };
        if options.workloads {
            cluster.start_workloads(options, &pki, &extra)?;
        }
        Ok(cluster)
    }

    fn start_workloads(
        &mut self,
        options: &Options,
        pki: &pki::Pki,
        extra: &dyn Fn(Component) -> Vec<String>,
    ) -> Result<(), Error> {
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut controller_manager = Command::new(self.bin_dir.join("kube-controller-manager"));
        controller_manager
            .arg(format!("--kubeconfig={kubeconfig}"))
            .arg(format!("--authentication-kubeconfig={kubeconfig}"))
            .arg(format!("--authorization-kubeconfig={kubeconfig}"))
            .arg("--leader-elect=false")
            .arg("--bind-address=127.0.0.1")
            .arg("--secure-port=0")
            .arg(format!(
                "--service-account-private-key-file={}",
                pki.service_account_key.display()
            ))
            .arg(format!("--root-ca-file={}", pki.ca_cert.display()))
            .arg(format!(
                "--cluster-signing-cert-file={}",
                pki.ca_cert.display()
            ))
            .arg(format!(
                "--cluster-signing-key-file={}",
                pki.ca_key.display()
            ))
            .arg("--use-service-account-credentials=false")
            .args(extra(Component::ControllerManager));
        self.group
            .spawn(Component::ControllerManager.name(), controller_manager)?;

        let mut scheduler = Command::new(self.bin_dir.join("kube-scheduler"));
        scheduler
            .arg(format!("--kubeconfig={kubeconfig}"))
            .arg(format!("--authentication-kubeconfig={kubeconfig}"))
            .arg(format!("--authorization-kubeconfig={kubeconfig}"))
            .arg("--leader-elect=false")
            .arg("--bind-address=127.0.0.1")
            .arg("--secure-port=0")
            .args(extra(Component::Scheduler));
        self.group.spawn(Component::Scheduler.name(), scheduler)?;

        let kwok_config = self.dir.join("kwok.yaml");
        std::fs::write(&kwok_config, KWOK_CONFIG).map_err(|source| Error::Io {
            what: format!("writing {}", kwok_config.display()),
            source,
        })?;
        let mut kwok = Command::new(self.bin_dir.join("kwok"));
        kwok.arg(format!("--kubeconfig={kubeconfig}"))
            .arg(format!("--config={}", kwok_config.display()))
            .arg("--manage-all-nodes=false")
            .arg(format!(
                "--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake"
            ))
            .arg("--node-lease-duration-seconds=40")
            .args(extra(Component::Kwok));
        self.group.spawn(Component::Kwok.name(), kwok)?;

        for index in 0..options.nodes.max(1) {
            let name = format!("kwok-node-{index}");
            let node = fake_node(&name);
            self.kubectl_stdin(&["apply", "-f", "-"], &node.to_string())?;
            self.nodes.push(name);
        }
        for node in self.nodes.clone() {
            let what = format!("fake node {node} to become Ready");
            wait_until(options.step_timeout, &what, &self.group, || {
                let ready = self
                    .kubectl_output(&[
                        "get",
                        "node",
                        &node,
                        "-o",
                        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                    ])
                    .map_err(|e| e.to_string())?;
                if ready.trim() == "True" {
                    Ok(())
                } else {
                    Err(format!("Ready={ready:?}"))
                }
            })?;
        }
        // Pods can only be created once the namespace's default ServiceAccount exists.
        self.wait_for_default_service_account("default", options.step_timeout)?;
        Ok(())
    }

    /// The per-process shared cluster (with workloads), started on first use. One test binary
    /// starts one cluster; each test takes its own [`TestCluster::namespace`].
    pub fn shared() -> Result<&'static TestCluster, Error> {
        static SHARED: OnceLock<Result<TestCluster, Arc<Error>>> = OnceLock::new();
        SHARED
            .get_or_init(|| TestCluster::start(Options::with_workloads()).map_err(Arc::new))
            .as_ref()
            .map_err(|e| Error::Shared(Arc::clone(e)))
    }

    /// The kubeconfig (admin credential, CA and server embedded).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The directory of the Go-built binaries (kubectl, helm, kustomize, ...).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The names of the fake nodes (empty without workloads).
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The log file of a component.
    pub fn log_path(&self, component: Component) -> PathBuf {
        self.group.log_path(component.name())
    }

    /// Fails with the log tail of the first component that has exited.
    pub fn check(&self) -> Result<(), Error> {
        self.group.check()
    }

    /// A `kubectl` (the one built with the cluster, same version) talking to this cluster.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin_dir.join("kubectl"));
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// Runs kubectl and returns its stdout; an error carries its stderr.
    pub fn kubectl_output(&self, args: &[&str]) -> Result<String, Error> {
        run_kubectl(&self.bin_dir.join("kubectl"), &self.kubeconfig, args)
    }

    /// Runs kubectl with `input` on its stdin and returns its stdout.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<String, Error> {
        use std::io::Write as _;
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Io {
                what: format!("running kubectl {}", args.join(" ")),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|source| Error::Io {
                    what: "writing kubectl's stdin".into(),
                    source,
                })?;
        }
        let output = child.wait_with_output().map_err(|source| Error::Io {
            what: format!("running kubectl {}", args.join(" ")),
            source,
        })?;
        kubectl_result(args, output)
    }

    /// A kube-rs client for this cluster (call inside a tokio runtime).
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let client_err = |detail: String| Error::Client {
            path: self.kubeconfig.clone(),
            detail,
        };
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| client_err(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| client_err(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| client_err(e.to_string()))
    }

    /// Creates a fresh namespace `<prefix>-<n>-<random>` for one test and returns its name.
    /// With workloads, waits until Pods can be created in it (default ServiceAccount).
    pub fn namespace(&self, prefix: &str) -> Result<String, Error> {
        self.check()?;
        let clean: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let clean = clean.trim_matches('-');
        let n = self.namespaces_created.fetch_add(1, Ordering::Relaxed);
        let suffix: u32 = rand::random::<u32>() % 100_000;
        let name = format!(
            "{}-{n}-{suffix:05}",
            if clean.is_empty() { "test" } else { clean }
        );
        self.kubectl_output(&["create", "namespace", &name])?;
        if self.workloads {
            self.wait_for_default_service_account(&name, Duration::from_secs(60))?;
        }
        Ok(name)
    }

    fn wait_for_default_service_account(
        &self,
        namespace: &str,
        timeout: Duration,
    ) -> Result<(), Error> {
        let what = format!("the default ServiceAccount in namespace {namespace}");
        wait_until(timeout, &what, &self.group, || {
            self.kubectl_output(&[
                "get",
                "serviceaccount",
                "default",
                "-n",
                namespace,
                "-o",
                "name",
            ])
            .map(|_| ())
            .map_err(|e| e.to_string())
        })
    }

    /// Stops everything now (also done on drop).
    pub fn stop(mut self) {
        self.group.shutdown();
    }

    /// The temporary directory holding certificates, logs and etcd data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn fake_node(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": { FAKE_NODE_ANNOTATION: "fake" },
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok"
            }
        }
    })
}

/// Whether a component died because a port it was given is taken.
fn lost_port_race(error: &Error) -> bool {
    matches!(error, Error::ComponentExited { tail, .. } if tail.contains("address already in use"))
}

/// The asked port when free, else a free one chosen now (another process may still take it
/// before the component binds: `start` retries that).
fn port(asked: Option<u16>, component: Component) -> Result<u16, Error> {
    match asked {
        Some(number) => {
            // Probe once so that a taken port is a clear error instead of a component crash.
            TcpListener::bind(("127.0.0.1", number)).map_err(|_| Error::PortInUse {
                component: component.name(),
                port: number,
            })?;
            Ok(number)
        }
        None => {
            let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(|source| Error::Io {
                what: "finding a free loopback port".into(),
                source,
            })?;
            let number = listener
                .local_addr()
                .map_err(|source| Error::Io {
                    what: "finding a free loopback port".into(),
                    source,
                })?
                .port();
            Ok(number)
        }
    }
}

fn run_kubectl(kubectl: &Path, kubeconfig: &Path, args: &[&str]) -> Result<String, Error> {
    let output = Command::new(kubectl)
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Io {
            what: format!("running {} {}", kubectl.display(), args.join(" ")),
            source,
        })?;
    kubectl_result(args, output)
}

fn kubectl_result(args: &[&str], output: std::process::Output) -> Result<String, Error> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Kubectl {
            args: args.join(" "),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Polls `probe` until it succeeds; fails early when a component exits, or after `timeout`
/// with the last probe error.
fn wait_until(
    timeout: Duration,
    what: &str,
    group: &ProcessGroup,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        group.check()?;
        let last_error = match probe() {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.to_string(),
                seconds: timeout.as_secs(),
                details: format!("; last error: {last_error}"),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// The tail of a component's log (for reports by callers).
pub fn component_log_tail(cluster: &TestCluster, component: Component, lines: usize) -> String {
    log_tail(&cluster.log_path(component), lines)
}
