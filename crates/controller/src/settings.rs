//! The controller's settings from Argo CD's ConfigMaps: `argocd-cm` (reconciliation
//! timeout, resource customizations, tracking) and `argocd-cmd-params-cm` (the controller's
//! command-line parameters as keys). Pure: data maps in, settings out.

use plumb_engine::settings::Settings;
use plumb_engine::sync::retry::parse_duration;
use std::collections::BTreeMap;
use std::time::Duration;

pub const ARGOCD_CM: &str = "argocd-cm";
pub const ARGOCD_CMD_PARAMS_CM: &str = "argocd-cmd-params-cm";

/// Everything the controller reads from the two ConfigMaps.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// The engine's part: health/actions customizations, ignore rules, tracking method.
    pub engine: Settings,
    /// How often an app is compared with Git without any other trigger (`timeout.reconciliation`,
    /// default 180 s; 0 turns periodic refresh off).
    pub reconciliation: Duration,
    /// Up to this much is added to each app's period so passes spread out
    /// (`timeout.reconciliation.jitter`, default 60 s, at most the period).
    pub jitter: Duration,
    /// How long after a sync a drifted app waits before self-heal syncs it again
    /// (`controller.self.heal.timeout.seconds`, default 5; 0 allowed).
    pub self_heal_timeout: Duration,
    /// Apps compared at once (`controller.status.processors`, default 20).
    pub status_processors: usize,
    /// Operations run at once (`controller.operation.processors`, default 10).
    pub operation_processors: usize,
    /// Problems found (unknown values), each naming the key; the defaults stay in force.
    pub warnings: Vec<String>,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        Self {
            engine: Settings::default(),
            reconciliation: Duration::from_secs(180),
            jitter: Duration::from_secs(60),
            self_heal_timeout: Duration::from_secs(5),
            status_processors: 20,
            operation_processors: 10,
            warnings: Vec::new(),
        }
    }
}

fn duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    // Argo CD accepts a bare number of seconds as well as a Go duration.
    if let Ok(seconds) = value.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    parse_duration(value).map_err(|e| e.to_string())
}

impl ControllerSettings {
    /// Reads both maps (either may be empty). A value that does not parse is reported in
    /// `warnings` and its default kept; a broken customization is an error for the engine
    /// part only (the previous engine settings stay in force at the caller).
    pub fn from_config_maps(
        argocd_cm: &BTreeMap<String, String>,
        params: &BTreeMap<String, String>,
    ) -> Result<Self, plumb_engine::settings::SettingsError> {
        let mut settings = ControllerSettings {
            engine: Settings::from_config_map_data(argocd_cm)?,
            ..Default::default()
        };
        let mut warnings = Vec::new();
        let mut warn = |key: &str, value: &str, error: &str| {
            warnings.push(format!(
                "{key}: {value:?} is not valid ({error}); default kept"
            ));
        };
        let mut reconciliation = settings.reconciliation;
        let mut jitter = settings.jitter;
        for (map, key, target) in [
            (argocd_cm, "timeout.reconciliation", &mut reconciliation),
            (argocd_cm, "timeout.reconciliation.jitter", &mut jitter),
        ] {
            if let Some(value) = map.get(key) {
                match duration(value) {
                    Ok(parsed) => *target = parsed,
                    Err(error) => warn(key, value, &error),
                }
            }
        }
        settings.reconciliation = reconciliation;
        settings.jitter = jitter.min(reconciliation);
        let key = "controller.self.heal.timeout.seconds";
        if let Some(value) = params.get(key) {
            match value.trim().parse::<u64>() {
                Ok(seconds) => settings.self_heal_timeout = Duration::from_secs(seconds),
                Err(_) => warn(key, value, "expected a whole number of seconds"),
            }
        }
        for (key, target) in [
            (
                "controller.status.processors",
                &mut settings.status_processors,
            ),
            (
                "controller.operation.processors",
                &mut settings.operation_processors,
            ),
        ] {
            if let Some(value) = params.get(key) {
                match value.trim().parse::<usize>() {
                    Ok(n) if n > 0 => *target = n,
                    _ => warn(key, value, "expected a positive whole number"),
                }
            }
        }
        settings.warnings = warnings;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_argo_cds() {
        let s = ControllerSettings::from_config_maps(&map(&[]), &map(&[])).expect("settings");
        assert_eq!(s.reconciliation, Duration::from_secs(180));
        assert_eq!(s.self_heal_timeout, Duration::from_secs(5));
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn values_are_read_in_both_spellings() {
        let s = ControllerSettings::from_config_maps(
            &map(&[
                ("timeout.reconciliation", "30s"),
                ("timeout.reconciliation.jitter", "90"),
            ]),
            &map(&[
                ("controller.self.heal.timeout.seconds", "0"),
                ("controller.status.processors", "4"),
            ]),
        )
        .expect("settings");
        assert_eq!(s.reconciliation, Duration::from_secs(30));
        // Jitter never exceeds the period.
        assert_eq!(s.jitter, Duration::from_secs(30));
        assert_eq!(s.self_heal_timeout, Duration::ZERO);
        assert_eq!(s.status_processors, 4);
    }

    #[test]
    fn bad_values_keep_defaults_and_say_which_key() {
        let s = ControllerSettings::from_config_maps(
            &map(&[("timeout.reconciliation", "soon")]),
            &map(&[("controller.self.heal.timeout.seconds", "-1")]),
        )
        .expect("settings");
        assert_eq!(s.reconciliation, Duration::from_secs(180));
        assert_eq!(s.self_heal_timeout, Duration::from_secs(5));
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("timeout.reconciliation"));
    }
}
