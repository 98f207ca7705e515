//! Resource actions: Argo CD's `discovery.lua` / `action.lua` contract, plus the built-in
//! `restart` of Deployments, StatefulSets and DaemonSets.

use crate::json;
use crate::lua::{ActionInfo, ActionOperation, ImpactedResource, LuaRuntime, ScriptError};
use crate::settings::Settings;
use serde_json::Value;
use std::collections::BTreeMap;

pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{kind} {name:?} has no action {action:?} (available: {available})")]
    Unknown {
        kind: String,
        name: String,
        action: String,
        available: String,
    },
    #[error("action {action:?} is disabled for this object")]
    Disabled { action: String },
    #[error(transparent)]
    Script(#[from] ScriptError),
}

fn has_builtin_restart(group: &str, kind: &str) -> bool {
    group == "apps" && matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet")
}

fn scripts_for<'a>(
    settings: &'a Settings,
    object: &Value,
) -> Option<&'a crate::settings::ActionScripts> {
    settings.actions.get(&(
        json::group(object).to_string(),
        json::kind(object).to_string(),
    ))
}

/// The actions an object offers: its discovery script's, and `restart` where built in.
pub fn list_actions(
    settings: &Settings,
    lua: &LuaRuntime,
    object: &Value,
) -> Result<Vec<ActionInfo>, ScriptError> {
    let mut actions = match scripts_for(settings, object).and_then(|s| s.discovery.as_deref()) {
        Some(discovery) => lua.discover_actions(discovery, object)?,
        None => Vec::new(),
    };
    if has_builtin_restart(json::group(object), json::kind(object))
        && !actions.iter().any(|a| a.name == "restart")
    {
        actions.push(ActionInfo {
            name: "restart".to_string(),
            ..Default::default()
        });
    }
    actions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(actions)
}

/// Runs an action; `now` (RFC 3339) stamps built-in restarts.
pub fn run_action(
    settings: &Settings,
    lua: &LuaRuntime,
    object: &Value,
    action: &str,
    params: &BTreeMap<String, String>,
    now: &str,
) -> Result<Vec<ImpactedResource>, ActionError> {
    let available = list_actions(settings, lua, object)?;
    let Some(info) = available.iter().find(|a| a.name == action) else {
        return Err(ActionError::Unknown {
            kind: json::kind(object).to_string(),
            name: json::name(object).to_string(),
            action: action.to_string(),
            available: if available.is_empty() {
                "none".to_string()
            } else {
                available
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    };
    if info.disabled {
        return Err(ActionError::Disabled {
            action: action.to_string(),
        });
    }
    if let Some(script) = scripts_for(settings, object).and_then(|s| s.actions.get(action)) {
        return Ok(lua.run_action(script, object, params)?);
    }
    // Only the built-in restart remains (list_actions offered nothing else).
    let mut restarted = object.clone();
    let annotations = restarted
        .pointer_mut("/spec/template")
        .and_then(|template| {
            if !template.is_object() {
                return None;
            }
            json::metadata_map_mut(template, "annotations")
        });
    match annotations {
        Some(annotations) => {
            annotations.insert(
                RESTARTED_AT_ANNOTATION.to_string(),
                Value::String(now.to_string()),
            );
        }
        None => {
            return Err(ActionError::Script(ScriptError::InvalidResult(
                "the object has no spec.template to restart".to_string(),
            )));
        }
    }
    Ok(vec![ImpactedResource {
        operation: ActionOperation::Patch,
        object: restarted,
    }])
}
