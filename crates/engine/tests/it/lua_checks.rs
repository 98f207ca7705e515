use plumb_engine::actions::{self, RESTARTED_AT_ANNOTATION};
use plumb_engine::health::HealthAssessor;
use plumb_engine::lua::{ActionOperation, LuaLimits, LuaRuntime};
use plumb_engine::settings::Settings;
use plumb_model::HealthStatusCode;
use serde_json::json;
use std::collections::BTreeMap;

/// A script in the style of Argo CD's bundled checks: global `hs`, reads `obj`.
const CERTIFICATE_CHECK: &str = r#"
hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for i, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Ready" and condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for certificate"
return hs
"#;

fn runtime() -> LuaRuntime {
    LuaRuntime::new(LuaLimits {
        instructions: 2_000_000,
        memory_bytes: 8 * 1024 * 1024,
    })
    .expect("runtime")
}

fn certificate(ready: &str) -> serde_json::Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
           "metadata": {"name": "tls"},
           "status": {"conditions": [{"type": "Ready", "status": ready, "message": "m"}]}})
}

#[test]
fn argo_style_script_assesses() {
    let lua = runtime();
    let health = lua.health(CERTIFICATE_CHECK, &certificate("True"));
    assert_eq!(health.status, HealthStatusCode::Healthy);
    assert_eq!(health.message, "m");
    let health = lua.health(CERTIFICATE_CHECK, &certificate("False"));
    assert_eq!(health.status, HealthStatusCode::Degraded);
    let health = lua.health(CERTIFICATE_CHECK, &json!({"kind": "Certificate"}));
    assert_eq!(health.status, HealthStatusCode::Progressing);
    assert_eq!(health.message, "Waiting for certificate");
}

#[test]
fn endless_loops_end_as_unknown() {
    let lua = runtime();
    for script in [
        "while true do end",
        "local function f() return f() end return f()",
        // Catching the budget error must not buy more time.
        "while true do pcall(function() while true do end end) end",
        "while true do xpcall(function() while true do end end, function(e) return e end) end",
    ] {
        let health = lua.health(script, &json!({}));
        assert_eq!(health.status, HealthStatusCode::Unknown, "{script}");
        assert!(
            health.message.contains("instruction budget")
                || health.message.contains("stack overflow"),
            "{script}: {}",
            health.message
        );
    }
    // The runtime still works after a runaway script.
    let health = lua.health("return {status = 'Healthy'}", &json!({}));
    assert_eq!(health.status, HealthStatusCode::Healthy);
}

#[test]
fn memory_bombs_end_as_unknown() {
    let lua = runtime();
    let health = lua.health("local s = 'x' while true do s = s .. s end", &json!({}));
    assert_eq!(health.status, HealthStatusCode::Unknown);
    assert!(health.message.contains("memory"), "{}", health.message);
    let health = lua.health("return {status = 'Suspended', message = 'ok'}", &json!({}));
    assert_eq!(health.status, HealthStatusCode::Suspended);
}

#[test]
fn unsafe_libraries_are_absent() {
    let lua = runtime();
    for script in [
        "io.open('/etc/passwd')",
        "os.execute('true')",
        "os.remove('/tmp/x')",
        "require('os')",
        "load('return 1')()",
        "loadstring('return 1')()",
        "dofile('/etc/passwd')",
        "debug.getinfo(1)",
        "setfenv(1, {})",
        "string.dump(print)",
        "collectgarbage()",
    ] {
        let health = lua.health(script, &json!({}));
        assert_eq!(health.status, HealthStatusCode::Unknown, "{script}");
        assert!(
            health.message.contains("failed"),
            "{script}: {}",
            health.message
        );
    }
    let health = lua.health(
        "local t = os.time() local d = os.date('!%Y') return {status = 'Healthy', message = d .. ':' .. tostring(t > 0) .. ':' .. string.upper('ok') .. math.floor(2.5) .. table.concat({'a','b'}, ',')}",
        &json!({}),
    );
    assert_eq!(
        health.status,
        HealthStatusCode::Healthy,
        "{}",
        health.message
    );
    assert!(
        health.message.ends_with(":true:OK2a,b"),
        "{}",
        health.message
    );
}

#[test]
fn garbage_results_and_errors_are_unknown_with_reason() {
    let lua = runtime();
    let cases = [
        ("return 42", "a number"),
        ("return {message = 'x'}", "no status"),
        (
            "return {status = 'Great'}",
            "\"Great\" is not a health status",
        ),
        ("return {status = 7}", "status must be a string"),
        ("error('boom')", "boom"),
        ("return obj.spec.missing.field", "failed"),
        ("this is not lua", "does not compile"),
    ];
    for (script, reason) in cases {
        let health = lua.health(script, &json!({"spec": {}}));
        assert_eq!(health.status, HealthStatusCode::Unknown, "{script}");
        assert!(
            health.message.contains(reason),
            "{script}: {}",
            health.message
        );
    }
}

#[test]
fn globals_do_not_leak_between_calls() {
    let lua = runtime();
    lua.health("leaked = 'yes' return {status = 'Healthy'}", &json!({}));
    let health = lua.health(
        "if leaked == nil then return {status = 'Healthy'} end return {status = 'Degraded'}",
        &json!({}),
    );
    assert_eq!(health.status, HealthStatusCode::Healthy);
}

#[test]
fn argocd_cm_wildcards_override_builtins() {
    let manifest = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: argocd-cm, namespace: argocd}
data:
  resource.customizations.health.*.example.com_*: |
    return {status = "Suspended", message = obj.kind}
  resource.customizations.health.apps_Deployment: |
    return {status = "Degraded", message = "custom"}
"#;
    let settings = Settings::from_config_map_manifest(manifest).expect("settings");
    let assessor = HealthAssessor::new(settings).expect("assessor");
    let widget =
        json!({"apiVersion": "ops.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let health = assessor.assess(&widget).expect("assessed");
    assert_eq!(
        (health.status, health.message.as_str()),
        (HealthStatusCode::Suspended, "Widget")
    );
    let deployment =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
    let health = assessor.assess(&deployment).expect("assessed");
    assert_eq!(health.message, "custom");
    let other =
        json!({"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}});
    assert_eq!(assessor.assess(&other), None);
}

#[test]
fn customization_directory_health_and_actions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kind_dir = dir.path().join("cert-manager.io/Certificate");
    std::fs::create_dir_all(kind_dir.join("actions/renew")).expect("mkdir");
    std::fs::write(kind_dir.join("health.lua"), CERTIFICATE_CHECK).expect("write");
    std::fs::write(
        kind_dir.join("actions/discovery.lua"),
        "local actions = {}\nactions[\"renew\"] = {[\"disabled\"] = obj.spec.renewed == true}\nreturn actions\n",
    )
    .expect("write");
    std::fs::write(
        kind_dir.join("actions/renew/action.lua"),
        "obj.spec.renewed = true\nobj.spec.reason = actionParams[\"reason\"]\nlocal job = {apiVersion = \"batch/v1\", kind = \"Job\", metadata = {name = obj.metadata.name .. \"-renew\"}}\nreturn {{operation = \"patch\", resource = obj}, {operation = \"create\", resource = job}}\n",
    )
    .expect("write");
    let mut settings = Settings::default();
    settings
        .add_customizations_dir(dir.path())
        .expect("load dir");
    let assessor = HealthAssessor::new(settings).expect("assessor");
    let mut cert = certificate("True");
    cert["spec"] = json!({"secretName": "tls"});
    assert_eq!(
        assessor.assess(&cert).map(|h| h.status),
        Some(HealthStatusCode::Healthy)
    );
    let listed = actions::list_actions(assessor.settings(), assessor.lua(), &cert).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "renew");
    assert!(!listed[0].disabled);
    let params = BTreeMap::from([("reason".to_string(), "expiring".to_string())]);
    let impacted = actions::run_action(
        assessor.settings(),
        assessor.lua(),
        &cert,
        "renew",
        &params,
        "now",
    )
    .expect("run");
    assert_eq!(impacted.len(), 2);
    assert_eq!(impacted[0].operation, ActionOperation::Patch);
    assert_eq!(impacted[0].object["spec"]["reason"], "expiring");
    assert_eq!(impacted[1].operation, ActionOperation::Create);
    assert_eq!(impacted[1].object["metadata"]["name"], "tls-renew");
    // Once renewed, discovery disables the action and running it is refused.
    let renewed = &impacted[0].object;
    let error = actions::run_action(
        assessor.settings(),
        assessor.lua(),
        renewed,
        "renew",
        &params,
        "now",
    )
    .expect_err("disabled");
    assert!(error.to_string().contains("disabled"), "{error}");
    let error = actions::run_action(
        assessor.settings(),
        assessor.lua(),
        &cert,
        "explode",
        &params,
        "now",
    )
    .expect_err("unknown");
    assert!(error.to_string().contains("available: renew"), "{error}");
}

#[test]
fn builtin_restart_stamps_the_pod_template() {
    let settings = Settings::default();
    let lua = runtime();
    for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
        let object = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w"},
                            "spec": {"template": {"spec": {"containers": []}}}});
        let listed = actions::list_actions(&settings, &lua, &object).expect("list");
        assert_eq!(
            listed.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["restart"]
        );
        let impacted = actions::run_action(
            &settings,
            &lua,
            &object,
            "restart",
            &BTreeMap::new(),
            "2026-11-23T20:00:00Z",
        )
        .expect("restart");
        assert_eq!(
            impacted[0].object["spec"]["template"]["metadata"]["annotations"]
                [RESTARTED_AT_ANNOTATION],
            "2026-11-23T20:00:00Z"
        );
    }
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert!(
        actions::list_actions(&settings, &lua, &config_map)
            .expect("list")
            .is_empty()
    );
}
