//! What the CLI's cluster tests share: the test cluster, `plumb diff`/`sync` of a local
//! directory into it, exit-code checks and kubectl reads.

use crate::{plumb, stderr, stdout};
use plumb_testcluster::TestCluster;
use std::process::Output;

/// The test cluster all CLI tests share.
pub fn cluster() -> &'static TestCluster {
    TestCluster::shared().unwrap_or_else(|e| panic!("test cluster: {e}"))
}

/// The options that point `plumb diff`/`sync` at the local directory `dir`, rendered as
/// application `app` into namespace `ns` of the cluster in `kubeconfig`, without colours.
pub fn local_target_args<'a>(
    dir: &'a str,
    app: &'a str,
    kubeconfig: &'a str,
    ns: &'a str,
) -> Vec<&'a str> {
    vec![
        "--local",
        dir,
        "--app",
        app,
        "--kubeconfig",
        kubeconfig,
        "--dest-namespace",
        ns,
        "--no-color",
    ]
}

/// Runs `plumb <command>` (diff or sync) of the local directory `dir` as application `app`
/// into namespace `ns` of the shared test cluster, with `extra` options.
pub fn run_local(command: &str, dir: &str, app: &str, ns: &str, extra: &[&str]) -> Output {
    let kubeconfig = cluster().kubeconfig_path().to_str().expect("utf-8");
    let mut args = vec![command];
    args.extend(local_target_args(dir, app, kubeconfig, ns));
    args.extend_from_slice(extra);
    plumb(&args)
}

/// Asserts the exit code, showing both outputs when it differs.
#[track_caller]
pub fn assert_exit_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}{}",
        stdout(output),
        stderr(output)
    );
}

/// `kubectl get <kind> <name> -n <ns> -o jsonpath=<jsonpath>` against the shared cluster.
pub fn kubectl_jsonpath(kind: &str, name: &str, ns: &str, jsonpath: &str) -> String {
    cluster()
        .kubectl_output(&[
            "get",
            kind,
            name,
            "-n",
            ns,
            "-o",
            &format!("jsonpath={jsonpath}"),
        ])
        .expect("kubectl get")
}
