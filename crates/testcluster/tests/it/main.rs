//! Integration tests of the real test cluster (one binary; one shared cluster per process).

mod bad_input;
mod differential;
mod lifecycle;
mod patch_meta;
mod workloads;

use plumb_testcluster::TestCluster;

/// The shared cluster with fake nodes; a cluster that cannot start fails the test (never skips).
pub fn cluster() -> &'static TestCluster {
    match TestCluster::shared() {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}"),
    }
}

/// `kubectl apply -f -` into a namespace.
pub fn apply(cluster: &TestCluster, namespace: &str, manifest: &str) {
    if let Err(e) = cluster.kubectl_stdin(&["apply", "-n", namespace, "-f", "-"], manifest) {
        panic!("applying into {namespace}: {e}");
    }
}

/// `kubectl` with the given arguments; panics with stderr on failure.
pub fn kubectl(cluster: &TestCluster, args: &[&str]) -> String {
    match cluster.kubectl_output(args) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    }
}

/// Polls `kubectl <args>` until its output equals `expected` (3 minutes at most).
pub fn wait_for_output(cluster: &TestCluster, args: &[&str], expected: &str) {
    let started = std::time::Instant::now();
    loop {
        let last = cluster.kubectl_output(args);
        if matches!(&last, Ok(out) if out.trim() == expected) {
            return;
        }
        if started.elapsed() > std::time::Duration::from_secs(180) {
            panic!(
                "kubectl {} never printed {expected:?}; last: {last:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
