//! `plumb sync --sync-option ServerSideApply=false` / `Validate=false` from the command line.

use crate::support::{assert_exit_code, cluster, kubectl_jsonpath, run_local};
use crate::{stderr, stdout};

fn run(command: &str, dir: &str, ns: &str, extra: &[&str]) -> std::process::Output {
    run_local(command, dir, "cli-csa", ns, extra)
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
    assert_exit_code(&output, 0);
    let annotation = kubectl_jsonpath(
        "configmap",
        "settings",
        &ns,
        "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    );
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
    assert_exit_code(&output, 0);
    let data = kubectl_jsonpath("configmap", "settings", &ns, "{.data}");
    assert_eq!(data, r#"{"a":"1"}"#);
}
