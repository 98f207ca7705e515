//! `plumb diff` / `plumb sync --prune` find what the app left in namespaces nobody names any
//! more (the destination namespace is not the only place an app writes to).

use crate::support::{cluster, run_local as run};
use crate::{stderr, stdout};

fn config_map(name: &str, namespace: Option<&str>) -> String {
    let namespace = namespace
        .map(|ns| format!(", namespace: {ns}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}{namespace}}}\ndata: {{a: '1'}}\n"
    )
}

#[test]
fn objects_left_in_another_namespace_are_pruned() {
    for tracking in ["annotation", "label"] {
        let ns = cluster().namespace("cli-prune").expect("namespace");
        let extra = cluster().namespace("cli-prune-extra").expect("namespace");
        let app = format!("cli-prune-{tracking}");
        // The argocd-cm file lives outside the rendered directory.
        let settings_dir = tempfile::tempdir().expect("tempdir");
        let settings = settings_dir.path().join("argocd-cm.yaml");
        std::fs::write(
            &settings,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: argocd-cm}}\ndata: {{application.resourceTrackingMethod: {tracking}}}\n"
            ),
        )
        .expect("write");
        let settings_text = settings.to_str().expect("utf-8").to_string();
        let source = tempfile::tempdir().expect("tempdir");
        let source_text = source.path().to_str().expect("utf-8");
        std::fs::write(source.path().join("home.yaml"), config_map("home", None)).expect("write");
        std::fs::write(
            source.path().join("away.yaml"),
            config_map("away", Some(&extra)),
        )
        .expect("write");
        let with_settings = ["--argocd-cm", settings_text.as_str()];

        let output = run("sync", source_text, &app, &ns, &with_settings);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        cluster()
            .kubectl_output(&["get", "configmap", "away", "-n", &extra])
            .expect("created in the extra namespace");

        // The extra namespace's object leaves Git; only the destination namespace is named.
        std::fs::remove_file(source.path().join("away.yaml")).expect("remove");
        let output = run("diff", source_text, &app, &ns, &with_settings);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(
            text.contains(&format!("/ConfigMap {extra}/away")),
            "{tracking}: {text}"
        );
        let output = run(
            "sync",
            source_text,
            &app,
            &ns,
            &[&with_settings[..], &["--prune"]].concat(),
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "{tracking}: {}{}",
            stdout(&output),
            stderr(&output)
        );
        assert!(stdout(&output).contains("Pruned"), "{}", stdout(&output));
        let gone = cluster().kubectl_output(&["get", "configmap", "away", "-n", &extra]);
        assert!(gone.is_err(), "{tracking}: still there: {gone:?}");
        cluster()
            .kubectl_output(&["get", "configmap", "home", "-n", &ns])
            .expect("home stays");
        let output = run("diff", source_text, &app, &ns, &with_settings);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{tracking}: {}",
            stdout(&output)
        );
    }
}
