//! Where plumb finds helm, kustomize and kubectl. For each tool, in this order:
//!
//! 1. `$PLUMB_HELM` / `$PLUMB_KUSTOMIZE`, a path to the binary. When set it is the only
//!    candidate: an override that is not an executable file is reported, never passed over
//!    for some other binary the user did not ask for.
//! 2. The directories the caller configured (`SourceConfig::tool_dirs`).
//! 3. `PATH` (absolute entries only: a relative one would find whatever the current
//!    directory, maybe a checkout, happens to hold).
//! 4. The cache `scripts/install-tools` builds into: `<cache>/tools/*/bin`.
//! 5. The cache `scripts/build-testcluster` builds into: `<cache>/testcluster/*/bin`.
//!
//! `<cache>` is `$PLUMB_CACHE_DIR` when set (the scripts then build only there), else
//! `$XDG_CACHE_HOME/plumb` and `~/.cache/plumb`. Within one cache, only complete builds
//! count (those with their `complete` marker, which the scripts write last), most recently
//! built or used first (the scripts touch the marker on every use), so the build of the
//! current pins wins over a stale one.
//!
//! Without a kustomize from 1–5, Kustomize runs as `kubectl kustomize` with a kubectl from
//! 2–5 (unless `$PLUMB_KUSTOMIZE` is set).
//!
//! The environment comes in as a [`ToolEnv`] value, so the search is a function of it and of
//! the files it finds: tests build one by hand instead of changing process-global variables.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::KustomizeTool;

/// What to say when helm is missing, after where plumb looked.
pub(crate) const HELM_REMEDY: &str = "run scripts/install-tools (in plumb's repository), or install helm 3 and put it on PATH or set PLUMB_HELM to its path";
/// What to say when kustomize is missing, after where plumb looked.
pub(crate) const KUSTOMIZE_REMEDY: &str = "run scripts/install-tools (in plumb's repository), or install kustomize 5 (or kubectl) and put it on PATH or set PLUMB_KUSTOMIZE to its path";

/// The environment variables tool discovery reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolEnv {
    pub path: Option<OsString>,
    /// `PLUMB_HELM`
    pub plumb_helm: Option<OsString>,
    /// `PLUMB_KUSTOMIZE`
    pub plumb_kustomize: Option<OsString>,
    /// `PLUMB_CACHE_DIR`
    pub plumb_cache_dir: Option<OsString>,
    pub xdg_cache_home: Option<OsString>,
    pub home: Option<OsString>,
}

impl ToolEnv {
    /// This process's environment (empty values count as unset, as in the scripts).
    pub fn from_process() -> ToolEnv {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        ToolEnv {
            path: var("PATH"),
            plumb_helm: var("PLUMB_HELM"),
            plumb_kustomize: var("PLUMB_KUSTOMIZE"),
            plumb_cache_dir: var("PLUMB_CACHE_DIR"),
            xdg_cache_home: var("XDG_CACHE_HOME"),
            home: var("HOME"),
        }
    }

    /// The plumb cache roots the scripts build into, in search order.
    pub fn cache_roots(&self) -> Vec<PathBuf> {
        if let Some(dir) = absolute_var(&self.plumb_cache_dir) {
            return vec![dir];
        }
        let mut roots = Vec::new();
        if let Some(xdg) = absolute_var(&self.xdg_cache_home) {
            roots.push(xdg.join("plumb"));
        }
        // Even with XDG_CACHE_HOME set: scripts/build-testcluster used to ignore it, so its
        // builds may sit here.
        if let Some(home) = absolute_var(&self.home) {
            let dir = home.join(".cache").join("plumb");
            if !roots.contains(&dir) {
                roots.push(dir);
            }
        }
        roots
    }

    /// The absolute entries of `PATH`.
    pub(crate) fn path_dirs(&self) -> Vec<PathBuf> {
        self.path
            .as_ref()
            .map(|p| {
                std::env::split_paths(p)
                    .filter(|d| d.is_absolute())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// An absolute path from a variable; a relative value is ignored, as the XDG spec says.
fn absolute_var(value: &Option<OsString>) -> Option<PathBuf> {
    value
        .as_ref()
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The `bin` directories of the complete builds under `dir` (e.g. `~/.cache/plumb/tools`),
/// most recently built or used first; name order breaks ties, so the order is fixed.
pub fn cached_bin_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut builds: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|entry| {
            let build = entry.path();
            let marker = build.join("complete").metadata().ok()?;
            (marker.is_file() && build.join("bin").is_dir())
                .then(|| (marker.modified().unwrap_or(SystemTime::UNIX_EPOCH), build))
        })
        .collect();
    builds.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    builds
        .into_iter()
        .map(|(_, build)| build.join("bin"))
        .collect()
}

/// The directories searched after an override (steps 2–5), and how to name them in a
/// message.
#[derive(Debug, Clone)]
pub struct SearchDirs {
    dirs: Vec<PathBuf>,
    description: String,
}

impl SearchDirs {
    pub fn new(extra: &[PathBuf], env: &ToolEnv) -> SearchDirs {
        let mut dirs: Vec<PathBuf> = extra.to_vec();
        dirs.extend(env.path_dirs());
        let roots = env.cache_roots();
        let caches: Vec<PathBuf> = ["tools", "testcluster"]
            .iter()
            .flat_map(|kind| roots.iter().map(move |root| root.join(kind)))
            .collect();
        for cache in &caches {
            dirs.extend(cached_bin_dirs(cache));
        }
        let mut places = Vec::new();
        if !extra.is_empty() {
            let listed: Vec<String> = extra.iter().map(|d| d.display().to_string()).collect();
            places.push(format!("in {}", listed.join(", ")));
        }
        places.push("on PATH".to_string());
        if caches.is_empty() {
            places.push(
                "in no cache (neither PLUMB_CACHE_DIR, XDG_CACHE_HOME nor HOME is set)".to_string(),
            );
        } else {
            let listed: Vec<String> = caches
                .iter()
                .map(|c| format!("{}/*/bin", c.display()))
                .collect();
            places.push(format!("in {}", listed.join(", ")));
        }
        SearchDirs {
            dirs,
            description: join_places(&places),
        }
    }

    /// The first executable `name` in these directories.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    }

    /// Every directory, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

/// "a", "a and b", "a, b and c".
fn join_places(places: &[String]) -> String {
    match places {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// One tool's search: what it found, else where it looked (for the missing-tool message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<T> {
    Yes(T),
    No { looked: String },
}

impl<T> Found<T> {
    pub fn found(self) -> Option<T> {
        match self {
            Found::Yes(tool) => Some(tool),
            Found::No { .. } => None,
        }
    }
}

/// Step 1: `Some` when the override variable is set, with what it names.
fn from_override(var: &str, value: &Option<OsString>) -> Option<Found<PathBuf>> {
    let value = value.as_ref()?;
    // Absolute now: commands run in other working directories.
    let path = std::path::absolute(value).unwrap_or_else(|_| PathBuf::from(value));
    Some(if is_executable(&path) {
        Found::Yes(path)
    } else {
        Found::No {
            looked: format!(
                "${var} is {}, which is not an executable file; nothing else was tried",
                path.display()
            ),
        }
    })
}

/// Where helm is.
pub fn locate_helm(dirs: &SearchDirs, env: &ToolEnv) -> Found<PathBuf> {
    if let Some(found) = from_override("PLUMB_HELM", &env.plumb_helm) {
        return found;
    }
    match dirs.find("helm") {
        Some(helm) => Found::Yes(helm),
        None => Found::No {
            looked: format!("looked in $PLUMB_HELM (not set), {}", dirs.description),
        },
    }
}

/// How Kustomize runs: a kustomize binary, else `kubectl kustomize`.
pub fn locate_kustomize(dirs: &SearchDirs, env: &ToolEnv) -> Found<KustomizeTool> {
    if let Some(found) = from_override("PLUMB_KUSTOMIZE", &env.plumb_kustomize) {
        return match found {
            Found::Yes(path) => Found::Yes(KustomizeTool::Kustomize(path)),
            Found::No { looked } => Found::No { looked },
        };
    }
    if let Some(kustomize) = dirs.find("kustomize") {
        return Found::Yes(KustomizeTool::Kustomize(kustomize));
    }
    if let Some(kubectl) = dirs.find("kubectl") {
        return Found::Yes(KustomizeTool::Kubectl(kubectl));
    }
    Found::No {
        looked: format!(
            "looked for kustomize and kubectl in $PLUMB_KUSTOMIZE (not set), {}",
            dirs.description
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn executable(dir: &Path, name: &str) -> PathBuf {
        fs::create_dir_all(dir).expect("mkdir");
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// A complete build (marker present) under `cache/<kind>/<key>`, its marker `age` old.
    fn build(cache: &Path, kind: &str, key: &str, age: Duration, tools: &[&str]) -> PathBuf {
        let dir = cache.join(kind).join(key);
        for tool in tools {
            executable(&dir.join("bin"), tool);
        }
        let marker = fs::File::create(dir.join("complete")).expect("marker");
        marker
            .set_modified(SystemTime::now() - age)
            .expect("set mtime");
        dir.join("bin")
    }

    fn env_with_cache(cache: &Path) -> ToolEnv {
        ToolEnv {
            plumb_cache_dir: Some(cache.into()),
            ..ToolEnv::default()
        }
    }

    fn helm(extra: &[PathBuf], env: &ToolEnv) -> Found<PathBuf> {
        locate_helm(&SearchDirs::new(extra, env), env)
    }

    #[test]
    fn configured_dirs_then_path_then_tools_cache_then_testcluster_cache() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = tmp.path().join("cache");
        let testcluster = build(&cache, "testcluster", "aaa", Duration::ZERO, &["helm"]);
        let mut env = env_with_cache(&cache);
        assert_eq!(helm(&[], &env), Found::Yes(testcluster.join("helm")));

        let tools = build(&cache, "tools", "bbb", Duration::from_secs(3600), &["helm"]);
        assert_eq!(
            helm(&[], &env),
            Found::Yes(tools.join("helm")),
            "the tools cache comes before the test cluster's, however old"
        );

        let on_path = tmp.path().join("path-bin");
        executable(&on_path, "helm");
        env.path =
            Some(std::env::join_paths([tmp.path().join("empty"), on_path.clone()]).expect("join"));
        assert_eq!(helm(&[], &env), Found::Yes(on_path.join("helm")));

        let configured = tmp.path().join("configured");
        executable(&configured, "helm");
        assert_eq!(
            helm(std::slice::from_ref(&configured), &env),
            Found::Yes(configured.join("helm"))
        );
    }

    #[test]
    fn an_override_wins_and_a_wrong_one_is_reported_not_passed_over() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = tmp.path().join("cache");
        build(&cache, "tools", "k", Duration::ZERO, &["helm", "kustomize"]);
        let mine = executable(&tmp.path().join("mine"), "my-helm");
        let mut env = env_with_cache(&cache);
        env.plumb_helm = Some(mine.clone().into());
        assert_eq!(helm(&[], &env), Found::Yes(mine));

        let not_executable = tmp.path().join("mine/plain");
        fs::write(&not_executable, "").expect("write");
        env.plumb_helm = Some(not_executable.clone().into());
        let Found::No { looked } = helm(&[], &env) else {
            panic!("a non-executable override was accepted or passed over");
        };
        assert!(
            looked.contains("$PLUMB_HELM is")
                && looked.contains(&not_executable.display().to_string()),
            "{looked}"
        );

        env.plumb_kustomize = Some(tmp.path().join("missing").into());
        let dirs = SearchDirs::new(&[], &env);
        assert!(matches!(locate_kustomize(&dirs, &env), Found::No { .. }));
    }

    #[test]
    fn incomplete_builds_are_skipped_and_the_newest_complete_build_comes_first() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = tmp.path().join("cache");
        let old = build(&cache, "tools", "old", Duration::from_secs(7200), &["helm"]);
        let new = build(&cache, "tools", "new", Duration::from_secs(60), &["helm"]);
        // Newer still, but without its marker (interrupted), and a build in progress.
        executable(&cache.join("tools/half/bin"), "helm");
        executable(&cache.join("tools/.build-x.123/bin"), "helm");
        fs::File::create(cache.join("tools/.build-x.123/complete")).expect("marker");
        assert_eq!(cached_bin_dirs(&cache.join("tools")), [new.clone(), old]);
        assert_eq!(
            helm(&[], &env_with_cache(&cache)),
            Found::Yes(new.join("helm"))
        );
        assert!(cached_bin_dirs(&tmp.path().join("absent")).is_empty());
    }

    #[test]
    fn cache_roots_follow_plumb_cache_dir_else_xdg_and_home() {
        let env = ToolEnv {
            plumb_cache_dir: Some("/c".into()),
            xdg_cache_home: Some("/x".into()),
            home: Some("/h".into()),
            ..ToolEnv::default()
        };
        assert_eq!(env.cache_roots(), [PathBuf::from("/c")]);
        let env = ToolEnv {
            plumb_cache_dir: None,
            ..env
        };
        assert_eq!(
            env.cache_roots(),
            [PathBuf::from("/x/plumb"), PathBuf::from("/h/.cache/plumb")]
        );
        let same = ToolEnv {
            xdg_cache_home: Some("/h/.cache".into()),
            ..env.clone()
        };
        assert_eq!(same.cache_roots(), [PathBuf::from("/h/.cache/plumb")]);
        let relative = ToolEnv {
            xdg_cache_home: Some("rel".into()),
            home: None,
            ..env
        };
        assert!(relative.cache_roots().is_empty());
    }

    #[test]
    fn relative_path_entries_and_non_executables_are_passed_over() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plain = tmp.path().join("plain");
        fs::create_dir_all(&plain).expect("mkdir");
        fs::write(plain.join("helm"), "").expect("write");
        let good = tmp.path().join("good");
        executable(&good, "helm");
        let env = ToolEnv {
            path: Some(
                std::env::join_paths([PathBuf::from("relative"), plain, good.clone()])
                    .expect("join"),
            ),
            ..ToolEnv::default()
        };
        assert_eq!(helm(&[], &env), Found::Yes(good.join("helm")));
    }

    #[test]
    fn kustomize_falls_back_to_kubectl_only_without_any_kustomize() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = tmp.path().join("cache");
        let on_path = tmp.path().join("path-bin");
        let kubectl = executable(&on_path, "kubectl");
        let mut env = env_with_cache(&cache);
        env.path = Some(on_path.clone().into());
        let dirs = SearchDirs::new(&[], &env);
        assert_eq!(
            locate_kustomize(&dirs, &env),
            Found::Yes(KustomizeTool::Kubectl(kubectl))
        );
        let tools = build(&cache, "tools", "k", Duration::ZERO, &["kustomize"]);
        let dirs = SearchDirs::new(&[], &env);
        assert_eq!(
            locate_kustomize(&dirs, &env),
            Found::Yes(KustomizeTool::Kustomize(tools.join("kustomize"))),
            "a cached kustomize beats a kubectl on PATH"
        );
    }

    #[test]
    fn nothing_found_names_every_place_looked() {
        let env = ToolEnv {
            path: Some("/nowhere".into()),
            home: Some("/home/u".into()),
            ..ToolEnv::default()
        };
        let Found::No { looked } = helm(&[PathBuf::from("/opt/tools")], &env) else {
            panic!("found a helm in /nowhere");
        };
        assert_eq!(
            looked,
            "looked in $PLUMB_HELM (not set), in /opt/tools, on PATH and in \
             /home/u/.cache/plumb/tools/*/bin, /home/u/.cache/plumb/testcluster/*/bin"
        );
        let dirs = SearchDirs::new(&[], &env);
        let Found::No { looked } = locate_kustomize(&dirs, &env) else {
            panic!("found a kustomize in /nowhere");
        };
        assert_eq!(
            looked,
            "looked for kustomize and kubectl in $PLUMB_KUSTOMIZE (not set), on PATH and in \
             /home/u/.cache/plumb/tools/*/bin, /home/u/.cache/plumb/testcluster/*/bin"
        );
    }
}
