//! Test support: a real Kubernetes control plane built from Go modules, started per test
//! binary (envtest-style).
//!
//! The binaries (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok,
//! helm, kustomize) come from `PLUMB_TESTCLUSTER_BIN`, or from `scripts/build-testcluster`,
//! which builds them once per machine from the modules pinned in `testcluster/`. When neither
//! works the tests fail with a message naming what is missing; they are never skipped.
//!
//! ```no_run
//! # fn demo() -> Result<(), plumb_testcluster::Error> {
//! use plumb_testcluster::TestCluster;
//! let cluster = TestCluster::shared()?; // one per process, with fake nodes
//! let ns = cluster.namespace("my-test")?;
//! let status = cluster.kubectl().args(["get", "pods", "-n", &ns]).status();
//! # let _ = status; Ok(()) }
//! ```
//!
//! # Failure on purpose
//! Pods labelled [`FAILURE_LABEL`] with one of the [`Failure`] values fail the way kubelet
//! would report it: image pull back-off, crash loop, or a failed run.
//!
//! # Teardown
//! Every component runs in one process group led by a small `sh` supervisor that watches a
//! pipe from this process; when this process exits (even by panic or SIGKILL) the supervisor
//! stops the components and removes the cluster's temporary directory.

mod binaries;
mod cluster;
pub mod differential;
mod error;
mod pki;
mod processes;
pub mod servers;

pub use binaries::{BIN_DIR_ENV, BINARIES, bin_dir, binary, build_script, run_build_script};
pub use cluster::{Component, Options, TestCluster, component_log_tail};
pub use error::Error;

/// The pod label that selects a failure stage in kwok (pod templates carry it to pods).
pub const FAILURE_LABEL: &str = "testcluster.plumb.dev/failure";

/// The failures the test cluster injects, selected by [`FAILURE_LABEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The pod stays Pending, its containers waiting in `ImagePullBackOff`.
    ImagePull,
    /// The pod runs but its containers are in `CrashLoopBackOff` and never Ready.
    CrashLoop,
    /// The pod's containers exit with code 1 and the pod is `Failed`.
    Fail,
}

impl Failure {
    /// The label value.
    pub fn label_value(self) -> &'static str {
        match self {
            Failure::ImagePull => "image-pull",
            Failure::CrashLoop => "crash-loop",
            Failure::Fail => "fail",
        }
    }
}
