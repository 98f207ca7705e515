//! What a person sees when a command fails, and what a local repository prints: the real
//! binary with the environment a user might have (RUST_BACKTRACE=1, no PLUMB_LOG).

use crate::{stderr, stdout};
use std::path::Path;
use std::process::{Command, Output};

/// Runs `plumb` as a user would: default logging, RUST_BACKTRACE=1 in the environment.
fn plumb_as_user(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(args)
        .env_remove("PLUMB_LOG")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run plumb")
}

/// stderr is one `error: …` line, without backtrace or "Caused by", that holds each of
/// `says` (what failed and where) exactly once: a cause is never repeated.
#[track_caller]
fn assert_one_error_line(output: &Output, code: i32, says: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "more than one line on stderr:\n{text}");
    assert!(lines[0].starts_with("error: "), "{text}");
    assert!(!text.to_lowercase().contains("backtrace"), "{text}");
    assert!(!text.contains("Caused by"), "{text}");
    for said in says {
        assert_eq!(
            text.matches(said).count(),
            1,
            "{said:?} not said once:\n{text}"
        );
    }
}

/// With `flag` (`--debug` or `-v`) the same failure shows more: the backtrace
/// RUST_BACKTRACE=1 asked for, with the same exit code.
#[track_caller]
fn assert_debug_shows_more(args: &[&str], flag: &str, code: i32) {
    let output = plumb_as_user(&[&[flag], args].concat());
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "{text}");
    assert!(text.starts_with("error: "), "{text}");
    assert!(text.contains("Stack backtrace"), "{text}");
}

fn unreachable_kubeconfig(dir: &Path) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .expect("write kubeconfig");
    path.to_str().expect("utf-8").to_string()
}

const MALFORMED: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [c\n";

#[test]
fn a_missing_file_is_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such.yaml");
    let missing = missing.to_str().expect("utf-8");
    let args = ["admin", "health", missing];
    let output = plumb_as_user(&args);
    assert_one_error_line(&output, 1, &[missing, "No such file or directory"]);
    assert_debug_shows_more(&args, "--debug", 1);
}

#[test]
fn malformed_yaml_is_one_line_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A file given to `admin`: the parser's snippet of the source is not printed.
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, MALFORMED).expect("write");
    let file = file.to_str().expect("utf-8");
    let output = plumb_as_user(&["admin", "health", file]);
    assert_one_error_line(&output, 1, &[file, "line 3", "unclosed bracket"]);

    // A directory given to `diff --local`: exit code 2 (an error, not 1, "different").
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).expect("mkdir");
    std::fs::write(manifests.join("cm.yaml"), MALFORMED).expect("write");
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let args = [
        "diff",
        "--local",
        manifests.to_str().expect("utf-8"),
        "--app",
        "a",
        "--kubeconfig",
        &kubeconfig,
    ];
    let output = plumb_as_user(&args);
    assert_one_error_line(&output, 2, &["cm.yaml:3", "malformed YAML"]);
    assert_debug_shows_more(&args, "-v", 2);
}

#[test]
fn an_unreachable_cluster_is_one_line_naming_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).expect("mkdir");
    std::fs::write(
        manifests.join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    )
    .expect("write");
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let diff = [
        "diff",
        "--local",
        manifests.to_str().expect("utf-8"),
        "--app",
        "a",
        "--kubeconfig",
        &kubeconfig,
    ];
    let output = plumb_as_user(&diff);
    // One line: kube-client's own log of the failed request is not printed besides.
    assert_one_error_line(
        &output,
        2,
        &["https://127.0.0.1:1/ unreachable", "Connection refused"],
    );
    // --debug is global: it goes after the subcommand too.
    let output = plumb_as_user(&[&diff[..], &["--debug"]].concat());
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Stack backtrace"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_bad_repository_url_is_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let cache = cache.to_str().expect("utf-8");

    // A scheme plumb does not fetch from.
    let args = [
        "render",
        "--repo",
        "ftp://git.example/r",
        "--cache-dir",
        cache,
    ];
    let output = plumb_as_user(&args);
    assert_one_error_line(&output, 1, &["scheme \"ftp\""]);

    // A file:// path that is no repository: git's message is in the library error's own
    // text and in its source, and is said once.
    let missing = format!("file://{}/no-such-repo", dir.path().display());
    let args = ["render", "--repo", &missing, "--cache-dir", cache];
    let output = plumb_as_user(&args);
    assert_one_error_line(&output, 1, &["does not appear to be a git repository"]);
    assert!(stderr(&output).contains(&missing), "{}", stderr(&output));
    // With --debug: each cause on its own line, and the backtrace.
    let output = plumb_as_user(&[&["--debug"], &args[..]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("Caused by"), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Stack backtrace"),
        "{}",
        stderr(&output)
    );
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

#[test]
fn rendering_a_local_repository_warns_about_nothing() {
    let repo = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(repo.path().join("app")).expect("mkdir");
    std::fs::write(
        repo.path().join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: local}\n",
    )
    .expect("write");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    // git's default, spelt out: a local repository does not serve filtered fetches.
    git(repo.path(), &["config", "uploadpack.allowFilter", "false"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "app"]);
    let cache = tempfile::tempdir().expect("cache");
    let url = format!("file://{}", repo.path().display());
    let output = plumb_as_user(&[
        "render",
        "--repo",
        &url,
        "--revision",
        "main",
        "--path",
        "app",
        "--cache-dir",
        cache.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("name: local"),
        "{}",
        stdout(&output)
    );
    // Neither a warning nor, at the default level, the debug line about partial clone.
    assert!(
        !stderr(&output).contains("WARN") && !stderr(&output).contains("partial clone"),
        "a warning for a local repository:\n{}",
        stderr(&output)
    );
}

/// Runs `plumb` with an environment that has no tools: `PATH` holds only git, `HOME` is
/// `home`, and none of the variables discovery reads are inherited; `extra` adds some.
fn plumb_without_tools(args: &[&str], home: &Path, extra: &[(&str, &Path)]) -> Output {
    let bin = home.join("path-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let git = Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .expect("command -v git");
    let git = String::from_utf8_lossy(&git.stdout).trim().to_string();
    let link = bin.join("git");
    if !link.exists() {
        std::os::unix::fs::symlink(&git, &link).expect("symlink git");
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_plumb"));
    command
        .args(args)
        .env_remove("PLUMB_LOG")
        .env("PATH", &bin)
        .env("HOME", home);
    for var in [
        "PLUMB_HELM",
        "PLUMB_KUSTOMIZE",
        "PLUMB_CACHE_DIR",
        "XDG_CACHE_HOME",
    ] {
        command.env_remove(var);
    }
    for (var, value) in extra {
        command.env(var, value);
    }
    command.output().expect("run plumb")
}

#[test]
fn a_chart_renders_with_the_cached_helm_and_a_missing_helm_names_install_tools() {
    let repo = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(repo.path().join("chart/templates")).expect("mkdir");
    std::fs::write(
        repo.path().join("chart/Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    )
    .expect("write");
    std::fs::write(
        repo.path().join("chart/templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n",
    )
    .expect("write");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "chart"]);
    let url = format!("file://{}", repo.path().display());
    let home = tempfile::tempdir().expect("home");
    let cache = home.path().join("source-cache");
    let args = [
        "render",
        "--repo",
        &url,
        "--path",
        "chart",
        "--app-name",
        "demo",
        "--cache-dir",
        cache.to_str().expect("utf-8"),
    ];

    // Nothing anywhere: the message says what provides helm.
    let output = plumb_without_tools(&args, home.path(), &[]);
    assert_one_error_line(
        &output,
        1,
        &[
            "helm is needed to render \"chart\" but was not found",
            "$PLUMB_HELM (not set)",
            "on PATH and in",
            "/.cache/plumb/tools/*/bin",
            "run scripts/install-tools",
            "install helm 3",
        ],
    );

    // The real helm where scripts/install-tools puts it, under ~/.cache/plumb/tools.
    let real = plumb_testcluster::binary("helm").unwrap_or_else(|e| panic!("{e}"));
    let build = home.path().join(".cache/plumb/tools/0123456789abcdef");
    std::fs::create_dir_all(build.join("bin")).expect("mkdir");
    std::os::unix::fs::symlink(&real, build.join("bin/helm")).expect("symlink");
    std::fs::write(build.join("complete"), "").expect("marker");
    let output = plumb_without_tools(&args, home.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("name: demo-cm"),
        "{}",
        stdout(&output)
    );

    // $PLUMB_HELM names the one to use; a wrong one is reported, not passed over.
    let empty_home = tempfile::tempdir().expect("home");
    let output = plumb_without_tools(&args, empty_home.path(), &[("PLUMB_HELM", &real)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let not_helm = empty_home.path().join("not-helm");
    let output = plumb_without_tools(&args, home.path(), &[("PLUMB_HELM", &not_helm)]);
    assert_one_error_line(
        &output,
        1,
        &[
            &format!("$PLUMB_HELM is {}", not_helm.display()),
            "run scripts/install-tools",
        ],
    );
}
