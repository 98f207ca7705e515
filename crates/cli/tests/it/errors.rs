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
