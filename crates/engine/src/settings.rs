//! Engine settings read from Argo CD's `argocd-cm` ConfigMap and from a directory laid out
//! like Argo CD's `resource_customizations/<group>/<kind>/…`.
//!
//! Keys understood in `argocd-cm` `data`:
//! - `resource.customizations.health.<group>_<kind>` (a Lua script; `*` wildcards allowed),
//! - `resource.customizations.actions.<group>_<kind>` (YAML: `discovery.lua`, `definitions`),
//! - `resource.customizations.ignoreDifferences.<group>_<kind>` and `…ignoreDifferences.all`,
//! - `resource.customizations` (the older single-key YAML map keyed by `group/Kind`),
//! - `resource.compareoptions` (YAML: `ignoreAggregatedRoles`, `ignoreResourceStatusField`),
//! - `application.resourceTrackingMethod` (`annotation`, `label`, `annotation+label`).
//!
//! The core group is written without a group: `resource.customizations.health.ConfigMap`.

use plumb_model::ResourceIgnoreDifferences;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const HEALTH_PREFIX: &str = "resource.customizations.health.";
const ACTIONS_PREFIX: &str = "resource.customizations.actions.";
const IGNORE_PREFIX: &str = "resource.customizations.ignoreDifferences.";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("argocd-cm key {key:?}: {message}")]
    Key { key: String, message: String },
    #[error("argocd-cm: {0}")]
    ConfigMap(String),
}

/// How plumb marks the live objects an Application owns (Argo CD's
/// `application.resourceTrackingMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrackingMethod {
    /// `argocd.argoproj.io/tracking-id: <app>:<group>/<kind>:<namespace>/<name>` (default).
    #[default]
    Annotation,
    /// `app.kubernetes.io/instance: <app>`.
    Label,
    /// Both; the annotation decides ownership.
    AnnotationAndLabel,
}

impl TrackingMethod {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "" | "annotation" => Some(Self::Annotation),
            "label" => Some(Self::Label),
            "annotation+label" => Some(Self::AnnotationAndLabel),
            _ => None,
        }
    }
}

/// Which `status` fields never count in a diff (`resource.compareoptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFieldPolicy {
    /// Drop `status` of every resource (plumb's default).
    #[default]
    All,
    /// Drop `status` of custom resources only.
    Crd,
    /// Compare `status` too (`none` / `off`).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompareOptions {
    pub ignore_aggregated_roles: bool,
    pub ignore_resource_status_field: StatusFieldPolicy,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            ignore_aggregated_roles: true,
            ignore_resource_status_field: StatusFieldPolicy::All,
        }
    }
}

/// A health script for the kinds its (possibly wildcard) group and kind match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthScript {
    pub group: String,
    pub kind: String,
    pub script: String,
}

/// The action scripts of one group/kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionScripts {
    pub discovery: Option<String>,
    pub actions: BTreeMap<String, String>,
}

/// Everything the engine reads from `argocd-cm` and customization directories.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// In lookup order: `argocd-cm` entries first, then directory entries.
    pub health_scripts: Vec<HealthScript>,
    pub actions: BTreeMap<(String, String), ActionScripts>,
    /// System-wide ignore rules; `.all` becomes group `*` and kind `*`.
    pub ignore_differences: Vec<ResourceIgnoreDifferences>,
    pub compare_options: CompareOptions,
    pub tracking_method: TrackingMethod,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IgnoreSpec {
    #[serde(default)]
    json_pointers: Vec<String>,
    #[serde(default)]
    jq_path_expressions: Vec<String>,
    #[serde(default)]
    managed_fields_managers: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ActionsSpec {
    #[serde(default, rename = "discovery.lua")]
    discovery: Option<String>,
    #[serde(default)]
    definitions: Vec<ActionDefinition>,
}

#[derive(Debug, Default, Deserialize)]
struct ActionDefinition {
    name: String,
    #[serde(rename = "action.lua")]
    action: String,
}

/// One entry of the older `resource.customizations` map.
#[derive(Debug, Default, Deserialize)]
struct LegacyCustomization {
    #[serde(default, rename = "health.lua")]
    health: Option<String>,
    #[serde(default)]
    actions: Option<String>,
    #[serde(default, rename = "ignoreDifferences")]
    ignore_differences: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompareOptionsSpec {
    #[serde(default)]
    ignore_aggregated_roles: Option<bool>,
    #[serde(default)]
    ignore_resource_status_field: Option<String>,
}

/// Splits `<group>_<kind>` (or a bare `<kind>` for the core group).
fn split_group_kind(suffix: &str) -> (String, String) {
    match suffix.rsplit_once('_') {
        Some((group, kind)) => (group.to_string(), kind.to_string()),
        None => (String::new(), suffix.to_string()),
    }
}

/// Splits `group/Kind` (or `Kind`).
fn split_slash_group_kind(key: &str) -> (String, String) {
    match key.rsplit_once('/') {
        Some((group, kind)) => (group.to_string(), kind.to_string()),
        None => (String::new(), key.to_string()),
    }
}

fn parse_yaml<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T, SettingsError> {
    serde_saphyr::from_str(text).map_err(|e| SettingsError::Key {
        key: key.to_string(),
        message: e.to_string(),
    })
}

impl Settings {
    /// Reads the `data` of an `argocd-cm` ConfigMap given as a whole manifest (YAML or JSON).
    pub fn from_config_map_manifest(text: &str) -> Result<Self, SettingsError> {
        let manifest: Value = serde_saphyr::from_str(text)
            .map_err(|e| SettingsError::ConfigMap(format!("not a YAML manifest: {e}")))?;
        let data = manifest
            .get("data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut strings = BTreeMap::new();
        for (key, value) in data {
            match value {
                Value::String(text) => {
                    strings.insert(key, text);
                }
                other => {
                    return Err(SettingsError::Key {
                        key,
                        message: format!("ConfigMap data values must be strings, got {other}"),
                    });
                }
            }
        }
        Self::from_config_map_data(&strings)
    }

    /// Reads the `data` map of `argocd-cm`.
    pub fn from_config_map_data(data: &BTreeMap<String, String>) -> Result<Self, SettingsError> {
        let mut settings = Settings::default();
        for (key, value) in data {
            if let Some(suffix) = key.strip_prefix(HEALTH_PREFIX) {
                let (group, kind) = split_group_kind(suffix);
                settings.health_scripts.push(HealthScript {
                    group,
                    kind,
                    script: value.clone(),
                });
            } else if let Some(suffix) = key.strip_prefix(ACTIONS_PREFIX) {
                let spec: ActionsSpec = parse_yaml(key, value)?;
                settings.add_actions(split_group_kind(suffix), spec);
            } else if let Some(suffix) = key.strip_prefix(IGNORE_PREFIX) {
                let spec: IgnoreSpec = parse_yaml(key, value)?;
                let (group, kind) = if suffix == "all" {
                    ("*".to_string(), "*".to_string())
                } else {
                    split_group_kind(suffix)
                };
                settings.add_ignore(group, kind, spec);
            } else if key == "resource.customizations" {
                let legacy: BTreeMap<String, LegacyCustomization> = parse_yaml(key, value)?;
                for (group_kind, entry) in legacy {
                    let (group, kind) = split_slash_group_kind(&group_kind);
                    if let Some(script) = entry.health {
                        settings.health_scripts.push(HealthScript {
                            group: group.clone(),
                            kind: kind.clone(),
                            script,
                        });
                    }
                    if let Some(actions) = entry.actions {
                        let spec: ActionsSpec = parse_yaml(key, &actions)?;
                        settings.add_actions((group.clone(), kind.clone()), spec);
                    }
                    if let Some(ignore) = entry.ignore_differences {
                        let spec: IgnoreSpec = parse_yaml(key, &ignore)?;
                        settings.add_ignore(group, kind, spec);
                    }
                }
            } else if key == "resource.compareoptions" {
                let spec: CompareOptionsSpec = parse_yaml(key, value)?;
                if let Some(flag) = spec.ignore_aggregated_roles {
                    settings.compare_options.ignore_aggregated_roles = flag;
                }
                if let Some(policy) = spec.ignore_resource_status_field {
                    settings.compare_options.ignore_resource_status_field = match policy.as_str() {
                        "all" => StatusFieldPolicy::All,
                        "crd" => StatusFieldPolicy::Crd,
                        "none" | "off" => StatusFieldPolicy::None,
                        other => {
                            return Err(SettingsError::Key {
                                key: key.clone(),
                                message: format!(
                                    "ignoreResourceStatusField {other:?} is not all, crd, none or off"
                                ),
                            });
                        }
                    };
                }
            } else if key == "application.resourceTrackingMethod" {
                settings.tracking_method =
                    TrackingMethod::parse(value).ok_or_else(|| SettingsError::Key {
                        key: key.clone(),
                        message: format!("{value:?} is not annotation, label or annotation+label"),
                    })?;
            }
        }
        // Exact keys win over wildcards, as in Argo CD.
        settings
            .health_scripts
            .sort_by_key(|script| script.group.contains('*') || script.kind.contains('*'));
        Ok(settings)
    }

    fn add_actions(&mut self, group_kind: (String, String), spec: ActionsSpec) {
        let entry = self.actions.entry(group_kind).or_default();
        if spec.discovery.is_some() {
            entry.discovery = spec.discovery;
        }
        for definition in spec.definitions {
            entry.actions.insert(definition.name, definition.action);
        }
    }

    fn add_ignore(&mut self, group: String, kind: String, spec: IgnoreSpec) {
        self.ignore_differences.push(ResourceIgnoreDifferences {
            group,
            kind,
            json_pointers: spec.json_pointers,
            jq_path_expressions: spec.jq_path_expressions,
            managed_fields_managers: spec.managed_fields_managers,
            ..Default::default()
        });
    }

    /// Adds the scripts of a `resource_customizations` directory
    /// (`<group>/<kind>/health.lua`, `<group>/<kind>/actions/discovery.lua`,
    /// `<group>/<kind>/actions/<action>/action.lua`; core kinds sit directly under the root).
    /// They rank after `argocd-cm` entries.
    pub fn add_customizations_dir(&mut self, root: &Path) -> Result<(), SettingsError> {
        let read_dir = |path: &Path| {
            std::fs::read_dir(path).map_err(|e| SettingsError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        };
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| SettingsError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        };
        let mut kind_dirs: Vec<(String, String, PathBuf)> = Vec::new();
        for entry in read_dir(root)? {
            let entry = entry.map_err(|e| SettingsError::File {
                path: root.to_path_buf(),
                message: e.to_string(),
            })?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let first = entry.file_name().to_string_lossy().to_string();
            if is_kind_dir(&path) {
                kind_dirs.push((String::new(), first.clone(), path.clone()));
            }
            for inner in read_dir(&path)? {
                let inner = inner.map_err(|e| SettingsError::File {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                let inner_path = inner.path();
                if inner_path.is_dir() && is_kind_dir(&inner_path) {
                    let kind = inner.file_name().to_string_lossy().to_string();
                    kind_dirs.push((first.clone(), kind, inner_path));
                }
            }
        }
        kind_dirs.sort();
        for (group, kind, dir) in kind_dirs {
            let health = dir.join("health.lua");
            if health.is_file() {
                self.health_scripts.push(HealthScript {
                    group: group.clone(),
                    kind: kind.clone(),
                    script: read(&health)?,
                });
            }
            let actions_dir = dir.join("actions");
            if actions_dir.is_dir() {
                let key = (group.clone(), kind.clone());
                let mut scripts = self.actions.remove(&key).unwrap_or_default();
                let discovery = actions_dir.join("discovery.lua");
                if scripts.discovery.is_none() && discovery.is_file() {
                    scripts.discovery = Some(read(&discovery)?);
                }
                for action in read_dir(&actions_dir)? {
                    let action = action.map_err(|e| SettingsError::File {
                        path: actions_dir.clone(),
                        message: e.to_string(),
                    })?;
                    let script = action.path().join("action.lua");
                    let name = action.file_name().to_string_lossy().to_string();
                    if script.is_file() && !scripts.actions.contains_key(&name) {
                        scripts.actions.insert(name, read(&script)?);
                    }
                }
                self.actions.insert(key, scripts);
            }
        }
        Ok(())
    }

    /// The health script for a group and kind: exact entries first, then wildcards.
    pub fn health_script(&self, group: &str, kind: &str) -> Option<&str> {
        self.health_scripts
            .iter()
            .find(|s| glob_match(&s.group, group) && glob_match(&s.kind, kind))
            .map(|s| s.script.as_str())
    }
}

fn is_kind_dir(path: &Path) -> bool {
    path.join("health.lua").is_file() || path.join("actions").is_dir()
}

/// Matches `text` against a pattern where `*` matches any run of characters and `?` one
/// character (Argo CD's glob for group/kind keys).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Iterative matcher with backtracking to the last star: linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_argo_keys() {
        assert!(glob_match("*.crossplane.io", "pkg.crossplane.io"));
        assert!(glob_match("*", ""));
        assert!(glob_match("Cert*", "Certificate"));
        assert!(!glob_match("Cert*", "Issuer"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("apps", "apps2"));
    }

    #[test]
    fn config_map_keys_are_parsed() {
        let manifest = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: argocd-cm}
data:
  resource.customizations.health.cert-manager.io_Certificate: |
    return {status = "Healthy"}
  resource.customizations.health.*.crossplane.io_*: |
    return {status = "Progressing"}
  resource.customizations.health.ConfigMap: |
    return {status = "Degraded"}
  resource.customizations.ignoreDifferences.apps_Deployment: |
    jsonPointers: [/spec/replicas]
  resource.customizations.ignoreDifferences.all: |
    managedFieldsManagers: [kube-controller-manager]
  resource.customizations.actions.apps_Deployment: |
    discovery.lua: |
      return {scale = {}}
    definitions:
    - name: scale
      action.lua: return obj
  resource.compareoptions: |
    ignoreResourceStatusField: crd
  application.resourceTrackingMethod: annotation+label
"#;
        let settings = Settings::from_config_map_manifest(manifest).expect("parse");
        assert!(
            settings
                .health_script("cert-manager.io", "Certificate")
                .is_some()
        );
        assert!(
            settings
                .health_script("pkg.crossplane.io", "Provider")
                .is_some_and(|s| s.contains("Progressing"))
        );
        assert!(
            settings
                .health_script("", "ConfigMap")
                .is_some_and(|s| s.contains("Degraded"))
        );
        assert!(settings.health_script("apps", "Deployment").is_none());
        assert_eq!(settings.ignore_differences.len(), 2);
        assert!(
            settings
                .ignore_differences
                .iter()
                .any(|r| r.group == "*" && r.managed_fields_managers == ["kube-controller-manager"])
        );
        let actions = &settings.actions[&("apps".to_string(), "Deployment".to_string())];
        assert!(actions.discovery.is_some());
        assert!(actions.actions.contains_key("scale"));
        assert_eq!(
            settings.compare_options.ignore_resource_status_field,
            StatusFieldPolicy::Crd
        );
        assert_eq!(settings.tracking_method, TrackingMethod::AnnotationAndLabel);
    }

    #[test]
    fn bad_config_map_values_name_the_key() {
        let mut data = BTreeMap::new();
        data.insert(
            "application.resourceTrackingMethod".to_string(),
            "owner".to_string(),
        );
        let error = Settings::from_config_map_data(&data).expect_err("bad");
        assert!(
            error.to_string().contains("resourceTrackingMethod"),
            "{error}"
        );
        let mut data = BTreeMap::new();
        data.insert(
            "resource.customizations.ignoreDifferences.apps_Deployment".to_string(),
            "jsonPointers: {".to_string(),
        );
        let error = Settings::from_config_map_data(&data).expect_err("bad yaml");
        assert!(error.to_string().contains("apps_Deployment"), "{error}");
    }
}
