use crate::{plumb, stderr, stdout};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write");
    path
}

const DEGRADED_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec: {restartPolicy: Always}
status:
  phase: Pending
  containerStatuses:
  - name: web
    state: {waiting: {reason: ImagePullBackOff, message: 'Back-off pulling image "nope:1"'}}
"#;

#[test]
fn health_of_builtin_kind_text_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pod = write(dir.path(), "pod.yaml", DEGRADED_POD);
    let pod = pod.to_str().expect("utf-8");
    let output = plumb(&["admin", "health", pod]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "Degraded: Back-off pulling image \"nope:1\"\n"
    );
    let output = plumb(&["admin", "health", pod, "-o", "json"]);
    let json: Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(
        json,
        json!({"status": "Degraded", "message": "Back-off pulling image \"nope:1\""})
    );
}

#[test]
fn health_null_for_kinds_without_assessment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_map = write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    let output = plumb(&[
        "admin",
        "health",
        config_map.to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "null");
}

#[test]
fn health_with_lua_script_argocd_cm_and_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = write(
        dir.path(),
        "widget.yaml",
        "apiVersion: ops.example.com/v1\nkind: Widget\nmetadata: {name: w}\nstatus: {ready: false}\n",
    );
    let widget = widget.to_str().expect("utf-8");
    let script = write(
        dir.path(),
        "check.lua",
        "hs = {}\nif obj.status.ready then hs.status = 'Healthy' else hs.status = 'Progressing' hs.message = 'not ready' end\nreturn hs\n",
    );
    let output = plumb(&[
        "admin",
        "health",
        widget,
        "--lua",
        script.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        stdout(&output),
        "Progressing: not ready\n",
        "{}",
        stderr(&output)
    );

    let config_map = write(
        dir.path(),
        "argocd-cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm}\ndata:\n  resource.customizations.health.*.example.com_Widget: |\n    return {status = 'Suspended', message = 'by argocd-cm'}\n",
    );
    let output = plumb(&[
        "admin",
        "health",
        widget,
        "--argocd-cm",
        config_map.to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    let json: Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(
        json,
        json!({"status": "Suspended", "message": "by argocd-cm"})
    );

    let customizations = dir.path().join("resource_customizations");
    write(
        &customizations,
        "ops.example.com/Widget/health.lua",
        "return {status = 'Degraded', message = 'by directory'}\n",
    );
    let output = plumb(&[
        "admin",
        "health",
        widget,
        "--customizations",
        customizations.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        stdout(&output),
        "Degraded: by directory\n",
        "{}",
        stderr(&output)
    );
}

#[test]
fn endless_lua_loop_is_unknown_not_a_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pod = write(dir.path(), "pod.yaml", DEGRADED_POD);
    let script = write(dir.path(), "loop.lua", "while true do end\n");
    let output = plumb(&[
        "admin",
        "health",
        pod.to_str().expect("utf-8"),
        "--lua",
        script.to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(json["status"], "Unknown");
    assert!(
        json["message"]
            .as_str()
            .unwrap_or("")
            .contains("instruction budget"),
        "{json}"
    );
}

#[test]
fn bad_input_files_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.yaml");
    let output = plumb(&["admin", "health", missing.to_str().expect("utf-8")]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("missing.yaml"),
        "{}",
        stderr(&output)
    );
    let two = write(dir.path(), "two.yaml", "kind: A\n---\nkind: B\n");
    let output = plumb(&["admin", "health", two.to_str().expect("utf-8")]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("expected one object, found 2 documents"),
        "{}",
        stderr(&output)
    );
    let broken = write(dir.path(), "broken.yaml", "kind: [unclosed\n");
    let output = plumb(&["admin", "health", broken.to_str().expect("utf-8")]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("not valid YAML"),
        "{}",
        stderr(&output)
    );
    let bad_cm = write(
        dir.path(),
        "cm.yaml",
        "data:\n  application.resourceTrackingMethod: owner\n",
    );
    let pod = write(dir.path(), "pod.yaml", DEGRADED_POD);
    let output = plumb(&[
        "admin",
        "health",
        pod.to_str().expect("utf-8"),
        "--argocd-cm",
        bad_cm.to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("resourceTrackingMethod"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn actions_list_and_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deployment = write(
        dir.path(),
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  template:\n    spec: {containers: [{name: web, image: nginx}]}\n",
    );
    let deployment = deployment.to_str().expect("utf-8");
    let output = plumb(&["admin", "action", "list", deployment]);
    assert_eq!(stdout(&output), "restart\tenabled\n", "{}", stderr(&output));
    let output = plumb(&[
        "admin", "action", "run", deployment, "restart", "-o", "json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(json[0]["operation"], "patch");
    let stamp = json[0]["object"]["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .expect("restartedAt");
    assert!(stamp.ends_with('Z') && stamp.len() == 20, "{stamp}");

    let config_map = write(
        dir.path(),
        "argocd-cm.yaml",
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: argocd-cm}
data:
  resource.customizations.actions.apps_Deployment: |
    discovery.lua: |
      local actions = {}
      actions["scale"] = {}
      return actions
    definitions:
    - name: scale
      action.lua: |
        obj.spec.replicas = tonumber(actionParams["replicas"])
        return obj
"#,
    );
    let cm = config_map.to_str().expect("utf-8");
    let output = plumb(&["admin", "action", "list", deployment, "--argocd-cm", cm]);
    assert_eq!(
        stdout(&output),
        "restart\tenabled\nscale\tenabled\n",
        "{}",
        stderr(&output)
    );
    let output = plumb(&[
        "admin",
        "action",
        "run",
        deployment,
        "scale",
        "--param",
        "replicas=4",
        "--argocd-cm",
        cm,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("# patch\n"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("replicas: 4"),
        "{}",
        stdout(&output)
    );
    let output = plumb(&["admin", "action", "run", deployment, "explode"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("has no action \"explode\" (available: restart)"),
        "{}",
        stderr(&output)
    );
}
