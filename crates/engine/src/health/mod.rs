//! Health: built-in assessments, Lua overrides, and the application's aggregate.

pub mod builtin;
mod go_json;
mod hpa;

use crate::json::{annotation, at};
use crate::lua::{LuaLimits, LuaRuntime, ScriptError};
use crate::settings::Settings;
use plumb_model::{HealthStatus, HealthStatusCode};
use serde_json::Value;

pub use builtin::{builtin_health, has_builtin, parse_status_code};

/// Annotation that keeps a resource out of the application's health (Argo CD's).
pub const IGNORE_HEALTHCHECK_ANNOTATION: &str = "argocd.argoproj.io/ignore-healthcheck";

/// Assesses resources with Argo CD's precedence: pending deletion, then a Lua script from
/// `argocd-cm` or a customization directory, then the built-in rule.
pub struct HealthAssessor {
    settings: Settings,
    lua: LuaRuntime,
}

impl HealthAssessor {
    pub fn new(settings: Settings) -> Result<Self, ScriptError> {
        Ok(Self {
            settings,
            lua: LuaRuntime::new(LuaLimits::default())?,
        })
    }

    pub fn with_limits(settings: Settings, limits: LuaLimits) -> Result<Self, ScriptError> {
        Ok(Self {
            settings,
            lua: LuaRuntime::new(limits)?,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn lua(&self) -> &LuaRuntime {
        &self.lua
    }

    /// Whether a resource of this group and kind has any health assessment.
    pub fn has_assessment(&self, group: &str, kind: &str) -> bool {
        self.settings.health_script(group, kind).is_some() || has_builtin(group, kind)
    }

    /// The health of a live object; `None` when its kind has no assessment.
    pub fn assess(&self, object: &Value) -> Option<HealthStatus> {
        if at(object, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
            return Some(HealthStatus {
                status: HealthStatusCode::Progressing,
                message: "Pending deletion".to_string(),
            });
        }
        let group = crate::json::group(object);
        let kind = crate::json::kind(object);
        if let Some(script) = self.settings.health_script(group, kind) {
            return Some(self.lua.health(script, object));
        }
        builtin_health(object)
    }
}

/// One resource's contribution to the application's health.
#[derive(Debug, Clone)]
pub struct ResourceHealthInput<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    /// The live object, `None` when it does not exist (yet).
    pub live: Option<&'a Value>,
    /// The desired object, if Git declares it.
    pub target: Option<&'a Value>,
    /// Its assessed health (`None` for kinds without an assessment).
    pub health: Option<&'a HealthStatus>,
    /// Whether the resource's kind has an assessment at all.
    pub has_assessment: bool,
}

/// The application's health: the worst of its resources' in Argo CD's order, skipping
/// hooks, `ignore-healthcheck` resources, missing resources whose kind has no assessment,
/// and child Applications that are Missing or Unknown.
pub fn aggregate<'a>(resources: impl IntoIterator<Item = ResourceHealthInput<'a>>) -> HealthStatus {
    let mut worst = HealthStatusCode::Healthy;
    for resource in resources {
        let is_hook = |object: Option<&Value>| object.is_some_and(crate::hooks::is_hook);
        if is_hook(resource.live) || is_hook(resource.target) {
            continue;
        }
        let ignored = [resource.target, resource.live]
            .into_iter()
            .flatten()
            .any(|object| annotation(object, IGNORE_HEALTHCHECK_ANNOTATION) == Some("true"));
        if ignored {
            continue;
        }
        let code = match (resource.live, resource.health) {
            (None, _) => HealthStatusCode::Missing,
            (Some(_), Some(health)) => health.status,
            (Some(_), None) => continue,
        };
        if code == HealthStatusCode::Missing && !resource.has_assessment {
            continue;
        }
        if resource.group == plumb_model::API_GROUP
            && resource.kind == plumb_model::APPLICATION_KIND
            && matches!(code, HealthStatusCode::Missing | HealthStatusCode::Unknown)
        {
            continue;
        }
        if code.severity() > worst.severity() {
            worst = code;
        }
    }
    HealthStatus {
        status: worst,
        message: String::new(),
    }
}
