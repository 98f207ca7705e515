//! Sandboxed Lua for Argo CD-style health checks and resource actions.
//!
//! The interpreter is LuaJIT (vendored, through mlua): Lua 5.1 plus `goto`, which Argo CD's
//! gopher-lua accepts and several of its shipped scripts use. The JIT compiler is switched
//! off when the state is made, so every instruction runs in the interpreter, where the count
//! hook sees it: compiled traces would not call the hook and could outrun the budget.
//! LuaJIT's own `jit` and `ffi` modules are never reachable from a script (`ffi` is not
//! loaded at all, `jit` only long enough to turn the compiler off), nor is `bit`.
//!
//! One Lua state holds the compiled scripts; every call runs in a fresh environment table whose
//! reads fall through to a table of safe globals, so a script's globals (`hs = {}` is the
//! usual idiom) never leak into the next call. Each call gets an instruction budget (a count
//! hook) and a memory allowance on top of what the state already uses. `pcall`/`xpcall` are
//! replaced by versions that cannot swallow a budget or memory error, so a script cannot
//! outrun its limits by catching them.

use crate::health::builtin::parse_status_code;
use mlua::serde::{DeserializeOptions, SerializeOptions};
use mlua::{
    Function, HookTriggers, Lua, LuaOptions, LuaSerdeExt, MultiValue, StdLib, Table, VmState,
};
use plumb_model::{HealthStatus, HealthStatusCode};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How much one script call may consume.
#[derive(Debug, Clone, Copy)]
pub struct LuaLimits {
    /// Lua VM instructions per call (checked every [`HOOK_INTERVAL`] instructions).
    pub instructions: u64,
    /// Bytes a call may allocate beyond what the state held before it.
    pub memory_bytes: usize,
}

impl Default for LuaLimits {
    fn default() -> Self {
        Self {
            instructions: 10_000_000,
            memory_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The count hook fires every this many instructions.
const HOOK_INTERVAL: u32 = 1_000;

/// How deeply library functions that call back into Lua (`pcall`, `xpcall`, `string.gsub`
/// with a function, `table.sort`, `string.format` with `__tostring`) may nest. Each level
/// re-enters the interpreter from native code and costs native stack, which LuaJIT (unlike
/// PUC Lua 5.1 with its 200 C calls) does not bound; unbounded, `local function f() pcall(f)
/// end f()` overflows the thread's stack and kills the process before the instruction budget
/// ends it. 100 levels fit a 2 MiB thread stack (tokio's default) in a debug build.
pub const MAX_NATIVE_DEPTH: u32 = 100;

/// Why a script produced no usable result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("Lua script does not compile: {0}")]
    Compile(String),
    #[error("Lua script failed: {0}")]
    Runtime(String),
    #[error("Lua script exceeded its instruction budget of {0} instructions (endless loop?)")]
    InstructionBudget(u64),
    #[error("Lua script exceeded its memory limit of {0} bytes")]
    Memory(usize),
    #[error("Lua script returned an invalid result: {0}")]
    InvalidResult(String),
    #[error("Lua sandbox could not be set up: {0}")]
    Setup(String),
}

/// An action a resource offers, as `discovery.lua` describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ActionInfo {
    pub name: String,
    #[serde(default)]
    pub disabled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub icon_class: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display_name: String,
}

/// What an action asks to be done to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionOperation {
    Patch,
    Create,
}

/// One object an action changes or creates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImpactedResource {
    pub operation: ActionOperation,
    pub object: Value,
}

struct State {
    lua: Lua,
    /// LuaJIT's `jit.status`, kept outside every script's reach to check the compiler is off.
    jit_status: Function,
    /// Metatable `{__index = safe globals}` shared by every call's environment.
    env_meta: Table,
    compiled: HashMap<String, Function>,
}

/// A sandboxed Lua runtime; cheap to call, safe to share between threads.
pub struct LuaRuntime {
    state: Mutex<State>,
    limits: LuaLimits,
    instructions_used: Arc<AtomicU64>,
    budget_exceeded: Arc<AtomicBool>,
    pcall_depth: Arc<AtomicU32>,
}

fn setup_error(error: mlua::Error) -> ScriptError {
    ScriptError::Setup(error.to_string())
}

impl LuaRuntime {
    pub fn new(limits: LuaLimits) -> Result<Self, ScriptError> {
        // `jit` is loaded only to switch the compiler off; `ffi` and `bit` are never loaded.
        let libs = StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::OS | StdLib::JIT;
        let lua = Lua::new_with(libs, LuaOptions::new()).map_err(setup_error)?;
        let jit_status = turn_jit_off(&lua).map_err(setup_error)?;
        let instructions_used = Arc::new(AtomicU64::new(0));
        let budget_exceeded = Arc::new(AtomicBool::new(false));
        {
            let used = Arc::clone(&instructions_used);
            let exceeded = Arc::clone(&budget_exceeded);
            let budget = limits.instructions;
            lua.set_hook(
                HookTriggers::new().every_nth_instruction(HOOK_INTERVAL),
                move |_, _| {
                    let total = used.fetch_add(u64::from(HOOK_INTERVAL), Ordering::Relaxed)
                        + u64::from(HOOK_INTERVAL);
                    if total > budget {
                        exceeded.store(true, Ordering::Relaxed);
                        return Err(mlua::Error::runtime("instruction budget exceeded"));
                    }
                    Ok(VmState::Continue)
                },
            )
            .map_err(setup_error)?;
        }
        let pcall_depth = Arc::new(AtomicU32::new(0));
        let safe = build_safe_globals(&lua, &budget_exceeded, &pcall_depth).map_err(setup_error)?;
        let env_meta = lua.create_table().map_err(setup_error)?;
        env_meta.set("__index", safe).map_err(setup_error)?;
        Ok(Self {
            state: Mutex::new(State {
                lua,
                jit_status,
                env_meta,
                compiled: HashMap::new(),
            }),
            limits,
            instructions_used,
            budget_exceeded,
            pcall_depth,
        })
    }

    /// Whether LuaJIT's trace compiler is on (it never is: see the module docs).
    pub fn jit_compiler_on(&self) -> Result<bool, ScriptError> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        jit_on(&state.jit_status).map_err(setup_error)
    }

    /// Runs `script` with the given globals and returns what it returned, as JSON.
    fn call(&self, script: &str, globals: &[(&str, &Value)]) -> Result<Value, ScriptError> {
        // A poisoned lock only means another call panicked mid-way; the Lua state itself is
        // still consistent because every call starts from a fresh environment.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let function = match state.compiled.get(script) {
            Some(function) => function.clone(),
            None => {
                let function = state
                    .lua
                    .load(script)
                    .set_name("script")
                    .into_function()
                    .map_err(|e| ScriptError::Compile(first_line(&e.to_string())))?;
                state.compiled.insert(script.to_string(), function.clone());
                function
            }
        };
        let lua = &state.lua;
        let to_lua_options = SerializeOptions::new()
            .serialize_none_to_null(false)
            .serialize_unit_to_null(false);
        let env = lua.create_table().map_err(setup_error)?;
        env.set_metatable(Some(state.env_meta.clone()))
            .map_err(setup_error)?;
        for (name, value) in globals {
            let value = lua
                .to_value_with(*value, to_lua_options)
                .map_err(|e| ScriptError::Setup(e.to_string()))?;
            env.set(*name, value).map_err(setup_error)?;
        }
        function.set_environment(env).map_err(setup_error)?;
        self.instructions_used.store(0, Ordering::Relaxed);
        self.budget_exceeded.store(false, Ordering::Relaxed);
        self.pcall_depth.store(0, Ordering::Relaxed);
        let baseline = lua.used_memory();
        lua.set_memory_limit(baseline.saturating_add(self.limits.memory_bytes))
            .map_err(setup_error)?;
        let outcome = function.call::<mlua::Value>(());
        // Lift the cap again so conversions and the next call's setup are not limited.
        let _ = lua.set_memory_limit(0);
        let returned = match outcome {
            Ok(value) => value,
            Err(error) => return Err(self.classify(&error)),
        };
        let from_lua_options = DeserializeOptions::new()
            .deny_unsupported_types(false)
            .deny_recursive_tables(true);
        let json: Value = lua
            .from_value_with(returned, from_lua_options)
            .map_err(|e| ScriptError::InvalidResult(first_line(&e.to_string())))?;
        Ok(json)
    }

    fn classify(&self, error: &mlua::Error) -> ScriptError {
        if self.budget_exceeded.load(Ordering::Relaxed) {
            return ScriptError::InstructionBudget(self.limits.instructions);
        }
        if is_memory_error(error) {
            return ScriptError::Memory(self.limits.memory_bytes);
        }
        ScriptError::Runtime(first_line(&error.to_string()))
    }

    /// Assesses health with an Argo CD health script. Never fails: a broken script yields
    /// Unknown with the reason, as Argo CD reports it.
    pub fn health(&self, script: &str, object: &Value) -> HealthStatus {
        match self.health_result(script, object) {
            Ok(health) => health,
            Err(error) => HealthStatus {
                status: HealthStatusCode::Unknown,
                message: error.to_string(),
            },
        }
    }

    fn health_result(&self, script: &str, object: &Value) -> Result<HealthStatus, ScriptError> {
        let returned = self.call(script, &[("obj", object)])?;
        let Value::Object(table) = &returned else {
            return Err(ScriptError::InvalidResult(format!(
                "expected a table with status and message, got {}",
                json_type(&returned)
            )));
        };
        let status_text = match table.get("status") {
            Some(Value::String(text)) => text.as_str(),
            Some(other) => {
                return Err(ScriptError::InvalidResult(format!(
                    "status must be a string, got {}",
                    json_type(other)
                )));
            }
            None => return Err(ScriptError::InvalidResult("no status field".to_string())),
        };
        let status = parse_status_code(status_text).ok_or_else(|| {
            ScriptError::InvalidResult(format!("{status_text:?} is not a health status"))
        })?;
        let message = match table.get("message") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        Ok(HealthStatus { status, message })
    }

    /// Runs a `discovery.lua` script: the actions the object offers, by name.
    pub fn discover_actions(
        &self,
        script: &str,
        object: &Value,
    ) -> Result<Vec<ActionInfo>, ScriptError> {
        let returned = self.call(script, &[("obj", object)])?;
        let entries = match returned {
            Value::Object(map) => map,
            // An empty Lua table reads back as an empty list: no actions.
            Value::Array(items) if items.is_empty() => serde_json::Map::new(),
            other => {
                return Err(ScriptError::InvalidResult(format!(
                    "discovery must return a table of actions, got {}",
                    json_type(&other)
                )));
            }
        };
        let mut actions: Vec<ActionInfo> = entries
            .into_iter()
            .map(|(name, info)| ActionInfo {
                disabled: info
                    .get("disabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                icon_class: crate::json::str_at(&info, &["iconClass"]).to_string(),
                display_name: crate::json::str_at(&info, &["displayName"]).to_string(),
                name,
            })
            .collect();
        actions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(actions)
    }

    /// Runs an `action.lua` script with `obj` and `actionParams`; returns the objects to
    /// patch or create (a single returned object means "patch this one").
    pub fn run_action(
        &self,
        script: &str,
        object: &Value,
        params: &BTreeMap<String, String>,
    ) -> Result<Vec<ImpactedResource>, ScriptError> {
        let params = serde_json::to_value(params)
            .map_err(|e| ScriptError::Setup(format!("action parameters: {e}")))?;
        let returned = self.call(script, &[("obj", object), ("actionParams", &params)])?;
        parse_action_result(returned)
    }
}

fn parse_action_result(returned: Value) -> Result<Vec<ImpactedResource>, ScriptError> {
    match returned {
        Value::Object(map) if map.contains_key("kind") => Ok(vec![ImpactedResource {
            operation: ActionOperation::Patch,
            object: Value::Object(map),
        }]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let operation = match crate::json::str_at(&item, &["operation"]) {
                    "patch" => ActionOperation::Patch,
                    "create" => ActionOperation::Create,
                    other => {
                        return Err(ScriptError::InvalidResult(format!(
                            "impacted resource {index}: operation {other:?} is not patch or create"
                        )));
                    }
                };
                match item.get("resource") {
                    Some(object @ Value::Object(_)) => Ok(ImpactedResource {
                        operation,
                        object: object.clone(),
                    }),
                    _ => Err(ScriptError::InvalidResult(format!(
                        "impacted resource {index} has no resource object"
                    ))),
                }
            })
            .collect(),
        other => Err(ScriptError::InvalidResult(format!(
            "an action must return the object or a list of impacted resources, got {}",
            json_type(&other)
        ))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).to_string()
}

fn is_memory_error(error: &mlua::Error) -> bool {
    match error {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => is_memory_error(cause),
        mlua::Error::WithContext { cause, .. } => is_memory_error(cause),
        _ => error.to_string().contains("not enough memory"),
    }
}

/// Switches LuaJIT's trace compiler off for the whole state, checks that it is off, and takes
/// `jit` out of the globals (and out of `package.loaded`'s registry twin) so no script can
/// switch it on again. Returns `jit.status` for later checks.
fn turn_jit_off(lua: &Lua) -> mlua::Result<Function> {
    let globals = lua.globals();
    let jit: Table = globals.get("jit")?;
    jit.get::<Function>("off")?.call::<()>(())?;
    jit.get::<Function>("flush")?.call::<()>(())?;
    let status: Function = jit.get("status")?;
    if jit_on(&status)? {
        return Err(mlua::Error::runtime(
            "LuaJIT's compiler is still on after jit.off()",
        ));
    }
    globals.set("jit", mlua::Nil)?;
    if let Some(loaded) = lua.named_registry_value::<Option<Table>>("_LOADED")? {
        loaded.set("jit", mlua::Nil)?;
    }
    Ok(status)
}

fn jit_on(status: &Function) -> mlua::Result<bool> {
    let values: MultiValue = status.call(())?;
    Ok(matches!(values.front(), Some(mlua::Value::Boolean(true))))
}

/// The table every script's environment reads through: safe base functions, `string`,
/// `table`, `math`, and `os.time`/`os.date`/`os.clock`. No io, os.execute, require, load,
/// dofile, getfenv/setfenv, debug or collectgarbage.
/// One level of native re-entry into the interpreter, given back when dropped.
struct NativeLevel<'a>(&'a AtomicU32);

impl<'a> NativeLevel<'a> {
    fn enter(depth: &'a AtomicU32) -> mlua::Result<Self> {
        if depth.fetch_add(1, Ordering::Relaxed) >= MAX_NATIVE_DEPTH {
            depth.fetch_sub(1, Ordering::Relaxed);
            return Err(mlua::Error::runtime(format!(
                "stack overflow (library calls that call back into Lua nested more than \
                 {MAX_NATIVE_DEPTH} deep)"
            )));
        }
        Ok(Self(depth))
    }
}

/// Replaces `table[name]` by a function that counts a [`NativeLevel`] around the original.
fn bound_reentry(lua: &Lua, table: &Table, name: &str, depth: &Arc<AtomicU32>) -> mlua::Result<()> {
    let original: Function = table.get(name)?;
    let depth = Arc::clone(depth);
    let bounded = lua.create_function(move |_, args: MultiValue| {
        let _level = NativeLevel::enter(&depth)?;
        original.call::<MultiValue>(args)
    })?;
    table.set(name, bounded)
}

/// The message a caught error gives a script, as Lua's own `pcall` would: the error's text
/// without mlua's "runtime error: " wrapping.
fn caught_message(error: &mlua::Error) -> String {
    match error {
        mlua::Error::RuntimeError(message) => first_line(message),
        mlua::Error::CallbackError { cause, .. } => caught_message(cause),
        mlua::Error::WithContext { cause, .. } => caught_message(cause),
        other => first_line(&other.to_string()),
    }
}

impl Drop for NativeLevel<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn build_safe_globals(
    lua: &Lua,
    budget_exceeded: &Arc<AtomicBool>,
    pcall_depth: &Arc<AtomicU32>,
) -> mlua::Result<Table> {
    let globals = lua.globals();
    let safe = lua.create_table()?;
    for name in [
        "assert",
        "error",
        "ipairs",
        "next",
        "pairs",
        "select",
        "tonumber",
        "tostring",
        "type",
        "unpack",
        "rawequal",
        "rawget",
        "rawset",
        "setmetatable",
        "_VERSION",
    ] {
        safe.set(name, globals.get::<mlua::Value>(name)?)?;
    }
    let string: Table = globals.get("string")?;
    // string.dump exposes bytecode, which a sandbox must never load back.
    string.set("dump", mlua::Nil)?;
    // The string table is also strings' metatable `__index`, so `s:gsub(...)` is bounded too.
    for name in ["gsub", "format"] {
        bound_reentry(lua, &string, name, pcall_depth)?;
    }
    safe.set("string", string)?;
    let table: Table = globals.get("table")?;
    bound_reentry(lua, &table, "sort", pcall_depth)?;
    safe.set("table", table)?;
    safe.set("math", globals.get::<Table>("math")?)?;
    let os: Table = globals.get("os")?;
    let safe_os = lua.create_table()?;
    for name in ["time", "date", "clock", "difftime"] {
        safe_os.set(name, os.get::<mlua::Value>(name)?)?;
    }
    safe.set("os", safe_os)?;

    // pcall/xpcall that let budget and memory errors through, so they end the call.
    let exceeded = Arc::clone(budget_exceeded);
    let depth = Arc::clone(pcall_depth);
    let pcall = lua.create_function(move |lua, (function, args): (Function, MultiValue)| {
        let _level = NativeLevel::enter(&depth)?;
        match function.call::<MultiValue>(args) {
            Ok(values) => {
                let mut out = MultiValue::new();
                out.push_back(mlua::Value::Boolean(true));
                out.extend(values);
                Ok(out)
            }
            Err(error) if exceeded.load(Ordering::Relaxed) || is_memory_error(&error) => Err(error),
            Err(error) => {
                let mut out = MultiValue::new();
                out.push_back(mlua::Value::Boolean(false));
                out.push_back(mlua::Value::String(
                    lua.create_string(caught_message(&error))?,
                ));
                Ok(out)
            }
        }
    })?;
    safe.set("pcall", pcall)?;
    let exceeded = Arc::clone(budget_exceeded);
    let depth = Arc::clone(pcall_depth);
    let xpcall = lua.create_function(move |_, (function, handler): (Function, Function)| {
        let _level = NativeLevel::enter(&depth)?;
        match function.call::<MultiValue>(()) {
            Ok(values) => {
                let mut out = MultiValue::new();
                out.push_back(mlua::Value::Boolean(true));
                out.extend(values);
                Ok(out)
            }
            Err(error) if exceeded.load(Ordering::Relaxed) || is_memory_error(&error) => Err(error),
            Err(error) => {
                let handled: MultiValue = handler.call(caught_message(&error))?;
                let mut out = MultiValue::new();
                out.push_back(mlua::Value::Boolean(false));
                out.extend(handled);
                Ok(out)
            }
        }
    })?;
    safe.set("xpcall", xpcall)?;
    Ok(safe)
}
