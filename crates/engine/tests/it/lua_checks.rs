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
        "local function f(n) return 1 + f(n + 1) end return f(1)",
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
fn deep_recursion_through_library_calls_is_an_error_not_a_crash() {
    // Each of these re-enters the interpreter from native code at every level; LuaJIT does
    // not bound that, so without plumb's own bound they overflow the thread's stack and abort
    // the process. Run them on a thread with tokio's default worker stack (2 MiB).
    let outcome = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let lua = runtime();
            let mut seen = Vec::new();
            for script in [
                // LuaJIT bounds pattern recursion itself.
                "local p = string.rep('a?', 200000) .. string.rep('a', 200000) return {status = 'Healthy', message = tostring(string.find(string.rep('a', 200000), p))}",
                "local function f() local ok, e = pcall(f) if not ok then error(e, 0) end end f()",
                "local function f() local ok, e = xpcall(f, function(m) return m end) if not ok then error(e, 0) end end f()",
                "local function f() string.gsub('a', 'a', f) end f()",
                "local function f() table.sort({3, 2, 1}, function(a, b) f() return a < b end) end f()",
                "local t = setmetatable({}, {__tostring = function(t) return string.format('%s', t) end}) return string.format('%s', t)",
                "local mt = {} mt.__lt = function(a, b) table.sort({setmetatable({}, mt), setmetatable({}, mt)}) return false end table.sort({setmetatable({}, mt), setmetatable({}, mt)})",
                // Metamethods the VM calls itself end on Lua's own limits.
                "local t = setmetatable({}, {__index = function(t, k) return t[k .. 'x'] end}) return t.a",
                "local t = setmetatable({}, {__tostring = function(t) return tostring(t) end}) return tostring(t)",
            ] {
                let health = lua.health(script, &json!({}));
                seen.push((script, health.status, health.message));
            }
            // Caught at every level, the bound ends the recursion and the script goes on.
            let health = lua.health(
                "local depth = 0 local function f() depth = depth + 1 pcall(f) end f() return {status = 'Healthy', message = tostring(depth)}",
                &json!({}),
            );
            (seen, health)
        })
        .expect("spawn")
        .join()
        .expect("no stack overflow");
    let (seen, caught) = outcome;
    assert_eq!(seen.len(), 9);
    for (script, status, message) in seen {
        assert_eq!(status, HealthStatusCode::Unknown, "{script}");
        assert!(
            message.contains("stack overflow")
                || message.contains("pattern too complex")
                || message.contains("instruction budget")
                || message.contains("memory limit"),
            "{script}: {message}"
        );
    }
    assert_eq!(
        (caught.status, caught.message.as_str()),
        (
            HealthStatusCode::Healthy,
            (plumb_engine::lua::MAX_NATIVE_DEPTH + 1)
                .to_string()
                .as_str()
        )
    );
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
fn bounded_library_functions_behave_as_before() {
    let lua = runtime();
    let health = lua.health(
        r#"
local words = {"pear", "apple", "fig"}
table.sort(words)
local byLength = {"pear", "apple", "fig"}
table.sort(byLength, function(a, b) return #a < #b end)
local replaced = string.gsub("a-b-c", "-", function(s) return "+" end)
local counted = select(2, ("x.y.z"):gsub("%.", "/"))
local ok, e = pcall(error, "boom")
local ok2, e2 = pcall(function() error({code = 7}) end)
local ok3, e3 = xpcall(function() error("deep", 0) end, function(m) return "handled " .. m end)
return {status = "Healthy", message = table.concat(words, ",") .. " " .. table.concat(byLength, ",")
  .. " " .. replaced .. " " .. counted .. " " .. string.format("%s/%d/%5.1f", "s", 3, 2.25)
  .. " " .. tostring(ok) .. ":" .. e .. " " .. tostring(ok2) .. " " .. tostring(ok3) .. ":" .. e3}
"#,
        &json!({}),
    );
    assert_eq!(
        (health.status, health.message.as_str()),
        (
            HealthStatusCode::Healthy,
            "apple,fig,pear fig,pear,apple a+b+c 2 s/3/  2.2 false:boom false false:handled deep"
        )
    );
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
    // Not even there to be called: os is a table of the four time functions only.
    let health = lua.health(
        "local names = {} for name in pairs(os) do names[#names + 1] = name end table.sort(names) \
         return {status = 'Healthy', message = type(io) .. type(require) .. type(dofile) .. type(loadstring) \
         .. type(load) .. type(module) .. type(package) .. ':' .. table.concat(names, ',')}",
        &json!({}),
    );
    assert_eq!(
        (health.status, health.message.as_str()),
        (
            HealthStatusCode::Healthy,
            "nilnilnilnilnilnilnil:clock,date,difftime,time"
        )
    );
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

/// Skips conditions it does not care about with `goto continue`, as several of Argo CD's
/// shipped checks do (gopher-lua accepts `goto`; plain Lua 5.1 does not compile it).
const GOTO_CONTINUE_CHECK: &str = r#"
local hs = {status = "Progressing", message = "Waiting for conditions"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local seen = 0
for _, condition in ipairs(obj.status.conditions) do
  if condition.type ~= "Ready" and condition.type ~= "Synced" then
    goto continue
  end
  seen = seen + 1
  if condition.status == "False" then
    hs.status = "Degraded"
    hs.message = condition.type .. ": " .. (condition.message or "")
    return hs
  end
  ::continue::
end
if seen == 2 then
  hs.status = "Healthy"
  hs.message = "Ready and synced"
end
return hs
"#;

#[test]
fn goto_continue_inside_a_loop_assesses() {
    let lua = runtime();
    let with = |conditions: serde_json::Value| {
        lua.health(
            GOTO_CONTINUE_CHECK,
            &json!({"kind": "Widget", "status": {"conditions": conditions}}),
        )
    };
    let health = with(json!([
        {"type": "Other", "status": "False", "message": "ignored"},
        {"type": "Ready", "status": "True"},
        {"type": "Unrelated", "status": "False"},
        {"type": "Synced", "status": "True"},
    ]));
    assert_eq!(
        (health.status, health.message.as_str()),
        (HealthStatusCode::Healthy, "Ready and synced")
    );
    let health = with(json!([
        {"type": "Other", "status": "False", "message": "ignored"},
        {"type": "Synced", "status": "False", "message": "bad spec"},
    ]));
    assert_eq!(
        (health.status, health.message.as_str()),
        (HealthStatusCode::Degraded, "Synced: bad spec")
    );
    // Only skipped conditions: the loop ends and the default stands.
    let health = with(json!([{"type": "Other", "status": "False"}]));
    assert_eq!(
        (health.status, health.message.as_str()),
        (HealthStatusCode::Progressing, "Waiting for conditions")
    );
}

#[test]
fn hot_loops_are_counted_because_the_jit_compiler_is_off() {
    let lua = runtime();
    assert!(!lua.jit_compiler_on().expect("jit status"));
    // Hot loops are what LuaJIT would compile into traces, which never call the count hook:
    // each of these needs far more than the 2M-instruction budget and ends on it.
    for script in [
        "local x = 0 for i = 1, 50000000 do x = x + i end return {status = 'Healthy'}",
        "local x = 0 while x < 50000000 do x = x + 1 end return {status = 'Healthy'}",
        "local t = {1, 2, 3} local n = 0 for _ = 1, 10000000 do for _, v in ipairs(t) do n = n + v end end return {status = 'Healthy'}",
        "local x = 0 ::top:: x = x + 1 if x < 50000000 then goto top end return {status = 'Healthy'}",
    ] {
        let health = lua.health(script, &json!({}));
        assert_eq!(health.status, HealthStatusCode::Unknown, "{script}");
        assert!(
            health.message.contains("instruction budget"),
            "{script}: {}",
            health.message
        );
    }
    // Just under the budget is fine: the count is per call, not cumulative.
    for _ in 0..3 {
        let health = lua.health(
            "local x = 0 for i = 1, 200000 do x = x + i end return {status = 'Healthy', message = tostring(x)}",
            &json!({}),
        );
        assert_eq!(
            (health.status, health.message.as_str()),
            (HealthStatusCode::Healthy, "20000100000")
        );
    }
}

#[test]
fn memory_bombs_of_every_shape_are_stopped() {
    let lua = runtime();
    for script in [
        "return {status = 'Healthy', message = string.rep('x', 1000000000)}",
        "local t = {} for i = 1, 100000000 do t[i] = 'item' .. i end",
        "local t = {} local i = 0 while true do i = i + 1 t[i] = {i, i, i, i} end",
        "local parts = {} for i = 1, 40 do parts[i] = string.rep('y', 1000000) end return {status = 'Healthy', message = table.concat(parts)}",
    ] {
        let health = lua.health(script, &json!({}));
        assert_eq!(health.status, HealthStatusCode::Unknown, "{script}");
        assert!(
            health.message.contains("memory limit"),
            "{script}: {}",
            health.message
        );
    }
    let health = lua.health("return {status = 'Healthy', message = 'after'}", &json!({}));
    assert_eq!(
        (health.status, health.message.as_str()),
        (HealthStatusCode::Healthy, "after")
    );
}

#[test]
fn luajit_extensions_and_bytecode_are_unreachable() {
    let lua = runtime();
    for script in [
        "return ffi.C",
        "ffi.cdef('int getpid(void);')",
        "jit.on()",
        "bit.band(1, 1)",
        "require('ffi')",
        "require('jit')",
        "return package.loaded.ffi.C",
        "load(string.char(27, 76, 74, 2, 2))",
        "loadstring(string.char(27) .. 'LJ' .. string.char(2))",
        "string.dump(function() end)",
        "newproxy(true)",
        "getmetatable('').__index.dump(print)",
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
        "return {status = 'Healthy', message = type(ffi) .. type(jit) .. type(bit) .. type(require) .. type(load) .. type(package)}",
        &json!({}),
    );
    assert_eq!(health.message, "nilnilnilnilnilnil");
    assert!(!lua.jit_compiler_on().expect("jit status"));
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
