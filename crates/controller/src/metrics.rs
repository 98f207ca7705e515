//! Prometheus metrics with Argo CD's names and labels, written in the text exposition
//! format by hand (a handful of families; no client library needed).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Bucket bounds of `argocd_app_reconcile` (seconds), as Argo CD's.
pub const RECONCILE_BUCKETS: [f64; 7] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.len() != bounds.len() {
            self.buckets = vec![0; bounds.len()];
        }
        for (bucket, bound) in self.buckets.iter_mut().zip(bounds) {
            if value <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += value;
    }
}

#[derive(Default)]
struct Families {
    /// `argocd_app_info`, one series per app (replaced on each reconcile).
    app_info: BTreeMap<String, Labels>,
    sync_total: BTreeMap<Labels, u64>,
    reconcile: BTreeMap<Labels, Histogram>,
    k8s_requests: BTreeMap<Labels, u64>,
    cluster_connection: BTreeMap<String, u8>,
    cluster_objects: BTreeMap<String, u64>,
}

/// The controller's metrics.
#[derive(Default)]
pub struct Metrics {
    families: Mutex<Families>,
}

/// One app's labels as `argocd_app_info` carries them.
#[derive(Debug, Clone, Default)]
pub struct AppInfo {
    pub namespace: String,
    pub name: String,
    pub project: String,
    pub dest_server: String,
    pub dest_namespace: String,
    pub repo: String,
    pub sync_status: String,
    pub health_status: String,
    pub operation: String,
    pub autosync_enabled: bool,
}

/// Figures read from other parts when the metrics are scraped.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub queue_depth: usize,
    pub render_cache_hits: u64,
    pub render_cache_misses: u64,
    /// Per repository: (ok, failed, seconds spent) of ls-remotes.
    pub git_requests: Vec<(String, plumb_app::desired::GitRequestStats)>,
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(labels: &[(&str, String)]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Families> {
        // Counters only ever grow under the lock: a panic elsewhere leaves them consistent.
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_app_info(&self, info: &AppInfo) {
        let key = format!("{}/{}", info.namespace, info.name);
        let series = vec![
            ("autosync_enabled", info.autosync_enabled.to_string()),
            ("dest_namespace", info.dest_namespace.clone()),
            ("dest_server", info.dest_server.clone()),
            ("health_status", info.health_status.clone()),
            ("name", info.name.clone()),
            ("namespace", info.namespace.clone()),
            ("operation", info.operation.clone()),
            ("project", info.project.clone()),
            ("repo", info.repo.clone()),
            ("sync_status", info.sync_status.clone()),
        ];
        self.lock().app_info.insert(key, series);
    }

    pub fn remove_app(&self, namespace: &str, name: &str) {
        self.lock().app_info.remove(&format!("{namespace}/{name}"));
    }

    pub fn count_sync(&self, info: &AppInfo, phase: &str) {
        let series = vec![
            ("dest_server", info.dest_server.clone()),
            ("name", info.name.clone()),
            ("namespace", info.namespace.clone()),
            ("phase", phase.to_string()),
            ("project", info.project.clone()),
        ];
        *self.lock().sync_total.entry(series).or_default() += 1;
    }

    pub fn observe_reconcile(&self, namespace: &str, dest_server: &str, seconds: f64) {
        let series = vec![
            ("dest_server", dest_server.to_string()),
            ("namespace", namespace.to_string()),
        ];
        self.lock()
            .reconcile
            .entry(series)
            .or_default()
            .observe(&RECONCILE_BUCKETS, seconds);
    }

    /// Requests sent to a destination's API server on behalf of an app.
    pub fn count_k8s_requests(&self, info: &AppInfo, requests: u64) {
        if requests == 0 {
            return;
        }
        let series = vec![
            ("name", info.name.clone()),
            ("namespace", info.namespace.clone()),
            ("project", info.project.clone()),
            ("server", info.dest_server.clone()),
        ];
        *self.lock().k8s_requests.entry(series).or_default() += requests;
    }

    pub fn set_cluster_connection(&self, server: &str, connected: bool) {
        self.lock()
            .cluster_connection
            .insert(server.to_string(), u8::from(connected));
    }

    pub fn set_cluster_objects(&self, server: &str, objects: u64) {
        self.lock()
            .cluster_objects
            .insert(server.to_string(), objects);
    }

    /// The text exposition of every family.
    pub fn render(&self, gauges: &Gauges) -> String {
        let families = self.lock();
        let mut out = String::new();
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        header(
            &mut out,
            "argocd_app_info",
            "gauge",
            "Information about application.",
        );
        for series in families.app_info.values() {
            let _ = writeln!(out, "argocd_app_info{} 1", labels(series));
        }
        header(
            &mut out,
            "argocd_app_sync_total",
            "counter",
            "Number of application syncs.",
        );
        for (series, n) in &families.sync_total {
            let _ = writeln!(out, "argocd_app_sync_total{} {n}", labels(series));
        }
        header(
            &mut out,
            "argocd_app_reconcile",
            "histogram",
            "Application reconciliation performance in seconds.",
        );
        for (series, histogram) in &families.reconcile {
            for (bound, count) in RECONCILE_BUCKETS.iter().zip(&histogram.buckets) {
                let mut with_le = series.clone();
                with_le.push(("le", bound.to_string()));
                let _ = writeln!(
                    out,
                    "argocd_app_reconcile_bucket{} {count}",
                    labels(&with_le)
                );
            }
            let mut inf = series.clone();
            inf.push(("le", "+Inf".to_string()));
            let _ = writeln!(
                out,
                "argocd_app_reconcile_bucket{} {}",
                labels(&inf),
                histogram.count
            );
            let _ = writeln!(
                out,
                "argocd_app_reconcile_sum{} {}",
                labels(series),
                histogram.sum
            );
            let _ = writeln!(
                out,
                "argocd_app_reconcile_count{} {}",
                labels(series),
                histogram.count
            );
        }
        header(
            &mut out,
            "argocd_app_k8s_request_total",
            "counter",
            "Number of kubernetes requests executed during application reconciliation.",
        );
        for (series, n) in &families.k8s_requests {
            let _ = writeln!(out, "argocd_app_k8s_request_total{} {n}", labels(series));
        }
        header(
            &mut out,
            "argocd_git_request_total",
            "counter",
            "Number of git requests performed by repo server",
        );
        for (repo, stats) in &gauges.git_requests {
            let series = vec![
                ("repo", repo.clone()),
                ("request_type", "ls-remote".to_string()),
            ];
            let _ = writeln!(
                out,
                "argocd_git_request_total{} {}",
                labels(&series),
                stats.ok + stats.failed
            );
        }
        header(
            &mut out,
            "argocd_git_request_duration_seconds",
            "summary",
            "Git requests duration seconds.",
        );
        for (repo, stats) in &gauges.git_requests {
            let series = vec![
                ("repo", repo.clone()),
                ("request_type", "ls-remote".to_string()),
            ];
            let _ = writeln!(
                out,
                "argocd_git_request_duration_seconds_sum{} {}",
                labels(&series),
                stats.seconds
            );
            let _ = writeln!(
                out,
                "argocd_git_request_duration_seconds_count{} {}",
                labels(&series),
                stats.ok + stats.failed
            );
        }
        header(
            &mut out,
            "argocd_cluster_api_resource_objects",
            "gauge",
            "Number of k8s resource objects in the cache.",
        );
        for (server, n) in &families.cluster_objects {
            let _ = writeln!(
                out,
                "argocd_cluster_api_resource_objects{} {n}",
                labels(&[("server", server.clone())])
            );
        }
        header(
            &mut out,
            "argocd_cluster_connection_status",
            "gauge",
            "The k8s cluster current connection status.",
        );
        for (server, up) in &families.cluster_connection {
            let _ = writeln!(
                out,
                "argocd_cluster_connection_status{} {up}",
                labels(&[("server", server.clone())])
            );
        }
        header(
            &mut out,
            "plumb_controller_queue_depth",
            "gauge",
            "Applications waiting to be reconciled.",
        );
        let _ = writeln!(out, "plumb_controller_queue_depth {}", gauges.queue_depth);
        header(
            &mut out,
            "plumb_render_cache_hits_total",
            "counter",
            "Renders served from the render cache.",
        );
        let _ = writeln!(
            out,
            "plumb_render_cache_hits_total {}",
            gauges.render_cache_hits
        );
        header(
            &mut out,
            "plumb_render_cache_misses_total",
            "counter",
            "Renders that missed the render cache.",
        );
        let _ = writeln!(
            out,
            "plumb_render_cache_misses_total {}",
            gauges.render_cache_misses
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_argo_cd_names_labels_and_cumulative_buckets() {
        let metrics = Metrics::default();
        let info = AppInfo {
            namespace: "argocd".into(),
            name: "guest\"book".into(),
            project: "default".into(),
            dest_server: "https://kubernetes.default.svc".into(),
            sync_status: "Synced".into(),
            health_status: "Healthy".into(),
            ..Default::default()
        };
        metrics.set_app_info(&info);
        metrics.count_sync(&info, "Succeeded");
        metrics.count_sync(&info, "Succeeded");
        metrics.observe_reconcile("argocd", "https://kubernetes.default.svc", 0.3);
        metrics.observe_reconcile("argocd", "https://kubernetes.default.svc", 3.0);
        metrics.set_cluster_connection("https://kubernetes.default.svc", true);
        let text = metrics.render(&Gauges {
            queue_depth: 2,
            ..Default::default()
        });
        assert!(text.contains(r#"name="guest\"book""#), "{text}");
        assert!(text.contains(r#"sync_status="Synced""#));
        assert!(text.contains(r#"argocd_app_sync_total{dest_server="https://kubernetes.default.svc",name="guest\"book",namespace="argocd",phase="Succeeded",project="default"} 2"#), "{text}");
        assert!(text.contains(r#"le="0.25"} 0"#), "{text}");
        assert!(text.contains(r#"le="0.5"} 1"#));
        assert!(text.contains(r#"le="4"} 2"#));
        assert!(text.contains(r#"le="+Inf"} 2"#));
        assert!(text.contains(
            "argocd_cluster_connection_status{server=\"https://kubernetes.default.svc\"} 1"
        ));
        assert!(text.contains("plumb_controller_queue_depth 2"));
        metrics.remove_app("argocd", "guest\"book");
        assert!(
            !metrics
                .render(&Gauges::default())
                .contains("argocd_app_info{")
        );
    }
}
