//! `plumb sync --sync-option ServerSideApply=false` / `Validate=false` from the command line.

use crate::{plumb, stderr, stdout};
use plumb_testcluster::TestCluster;

fn cluster() -> &'static TestCluster {
    TestCluster::shared().unwrap_or_else(|e| panic!("test cluster: {e}"))
}

fn run(command: &str, dir: &str, ns: &str, extra: &[&str]) -> std::process::Output {
    let kubeconfig = cluster().kubeconfig_path().to_str().expect("utf-8");
    let mut args = vec![
        command,
        "--local",
        dir,
        "--app",
        "cli-csa",
        "--kubeconfig",
        kubeconfig,
        "--dest-namespace",
        ns,
        "--no-color",
    ];
    args.extend_from_slice(extra);
    plumb(&args)
}

#[test]
fn client_side_sync_options_from_the_command_line() {
    let ns = cluster().namespace("cli-csa").expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_text = dir.path().to_str().expect("utf-8");
    let manifest = dir.path().join("settings.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\nbogus: field\ndata: {a: '1', b: '2'}\n",
    )
    .expect("write");
    let client_side = ["--sync-option", "ServerSideApply=false"];
    let output = run("diff", dir_text, &ns, &["--sync-option", "Validate=maybe"]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("Validate") && stderr(&output).contains("true or false"),
        "{}",
        stderr(&output)
    );

    // Strict by default: the unknown field is refused before anything is written.
    let output = run("sync", dir_text, &ns, &client_side);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("unknown field \"bogus\""),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        cluster()
            .kubectl_output(&["get", "configmap", "settings", "-n", &ns])
            .is_err()
    );

    // Validate=false drops it; the object is created client-side.
    let loose = [&client_side[..], &["--sync-option", "Validate=false"]].concat();
    let output = run("sync", dir_text, &ns, &loose);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let annotation = cluster()
        .kubectl_output(&[
            "get",
            "configmap",
            "settings",
            "-n",
            &ns,
            "-o",
            "jsonpath={.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
        ])
        .expect("get");
    assert!(annotation.contains("\"b\":\"2\""), "{annotation}");
    let output = run("diff", dir_text, &ns, &loose);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    // A key removed from Git shows in the diff and is removed by the sync.
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1'}\n",
    )
    .expect("write");
    let output = run("diff", dir_text, &ns, &client_side);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let output = run("sync", dir_text, &ns, &client_side);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let data = cluster()
        .kubectl_output(&[
            "get",
            "configmap",
            "settings",
            "-n",
            &ns,
            "-o",
            "jsonpath={.data}",
        ])
        .expect("get");
    assert_eq!(data, r#"{"a":"1"}"#);
}
