use std::path::PathBuf;
use std::sync::Arc;

/// Why a test cluster could not be built, started or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Go-built binaries are not available and could not be built.
    #[error(
        "the real test cluster's binaries are not available: {detail}\n\
         (build them with scripts/build-testcluster and/or set PLUMB_TESTCLUSTER_BIN to its output)"
    )]
    BinariesUnavailable {
        /// What is missing and where it was looked for.
        detail: String,
    },
    /// A file operation or process spawn failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Generating certificates or keys failed.
    #[error("generating the cluster's certificates: {0}")]
    Pki(String),
    /// A port asked for explicitly is already taken by another process.
    #[error("port 127.0.0.1:{port} for {component} is already in use by another process")]
    PortInUse {
        /// The component that needed the port.
        component: &'static str,
        /// The port.
        port: u16,
    },
    /// A component exited (at start or later).
    #[error("{component} exited ({status}); last lines of its log {log}:\n{tail}")]
    ComponentExited {
        /// Which component (`etcd`, `kube-apiserver`, ...).
        component: &'static str,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// Every start attempt lost a port to another process between choosing it and binding.
    #[error("gave up after {attempts} start attempts that all lost a port race; the last: {last}")]
    PortsKeptColliding {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        last: Box<Error>,
    },
    /// Something did not become ready in time.
    #[error("timed out after {seconds}s waiting for {what}{details}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The wait.
        seconds: u64,
        /// Extra context (e.g. the last error seen), starting with a separator.
        details: String,
    },
    /// A kubectl invocation failed.
    #[error("kubectl {args} failed ({status}): {stderr}")]
    Kubectl {
        /// The arguments.
        args: String,
        /// Exit status.
        status: String,
        /// Its standard error.
        stderr: String,
    },
    /// Building a kube-rs client from the kubeconfig failed.
    #[error("building a kube client from {path}: {detail}")]
    Client {
        /// The kubeconfig.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The per-process shared cluster failed to start (the first error, shared by every test).
    #[error("the shared test cluster failed to start: {0}")]
    Shared(Arc<Error>),
}
