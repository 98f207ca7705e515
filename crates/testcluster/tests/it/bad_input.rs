//! Bad input: taken ports, components that exit at start, missing binaries, no Go, an
//! unreachable module proxy, a half-finished build cache.

use std::path::Path;
use std::process::Command;

use plumb_testcluster::{Component, Error, Options, TestCluster};

#[test]
fn a_taken_apiserver_port_is_a_clear_error() {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let err = TestCluster::start(Options {
        apiserver_port: Some(port),
        ..Options::default()
    })
    .expect_err("started on a taken port");
    assert!(
        matches!(err, Error::PortInUse { component: "kube-apiserver", port: p } if p == port),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn a_component_that_exits_at_start_is_reported_with_its_log_tail() {
    let options = Options {
        extra_args: vec![(Component::ApiServer, "--no-such-flag-for-plumb".to_string())],
        ..Options::default()
    };
    let err = TestCluster::start(options).expect_err("started with a bad flag");
    match &err {
        Error::ComponentExited {
            component, tail, ..
        } => {
            assert_eq!(*component, "kube-apiserver");
            assert!(
                tail.contains("unknown flag: --no-such-flag-for-plumb"),
                "tail: {tail}"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains("last lines of its log"), "{err}");
}

#[test]
fn a_bin_dir_without_the_binaries_names_what_is_missing() {
    let empty = tempfile::tempdir().expect("tempdir");
    let err = TestCluster::start(Options {
        bin_dir: Some(empty.path().to_path_buf()),
        ..Options::default()
    })
    .expect_err("started without binaries");
    let text = err.to_string();
    assert!(matches!(err, Error::BinariesUnavailable { .. }), "{text}");
    assert!(
        text.contains("kube-apiserver") && text.contains("etcd"),
        "{text}"
    );
}

fn build_script() -> std::path::PathBuf {
    plumb_testcluster::build_script()
}

#[test]
fn build_without_go_says_go_is_missing() {
    without_go_says_go_is_missing(&build_script());
}

#[test]
fn install_tools_without_go_says_go_is_missing() {
    let script = build_script().with_file_name("install-tools");
    let stderr = without_go_says_go_is_missing(&script);
    assert!(
        stderr.contains("install helm 3 and kustomize 5"),
        "stderr: {stderr}"
    );
}

/// Runs `script` with a PATH that has the basic tools but no go; returns its stderr.
fn without_go_says_go_is_missing(script: &Path) -> String {
    let bin = tempfile::tempdir().expect("tempdir");
    for tool in [
        "bash",
        "dirname",
        "cat",
        "sha256sum",
        "cut",
        "mkdir",
        "date",
        "rm",
    ] {
        if let Ok(path) = which(tool) {
            std::os::unix::fs::symlink(path, bin.path().join(tool)).expect("symlink");
        }
    }
    let cache = tempfile::tempdir().expect("cache");
    let out = Command::new(script)
        .env("PATH", bin.path())
        .env("PLUMB_CACHE_DIR", cache.path())
        .output()
        .expect("run build script");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Go is not installed"), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout must stay empty on failure: {:?}",
        out.stdout
    );
    stderr.into_owned()
}

fn which(tool: &str) -> Result<std::path::PathBuf, ()> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join(tool);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(())
}

#[test]
fn build_with_an_unreachable_module_proxy_says_so() {
    let cache = tempfile::tempdir().expect("cache");
    let modcache = tempfile::tempdir().expect("modcache");
    // Port 1 on loopback: nothing listens, connections are refused at once.
    let out = Command::new(build_script())
        .env("PLUMB_CACHE_DIR", cache.path())
        .env("GOMODCACHE", modcache.path())
        .env("GOPROXY", "http://127.0.0.1:1")
        .env("GONOSUMDB", "*")
        .output()
        .expect("run build script");
    // Go marks module cache files read-only; make them removable for the temp dir's drop.
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(modcache.path())
        .status();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not download the Go modules"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("http://127.0.0.1:1"),
        "stderr names the proxy: {stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_build_cache_without_its_completion_marker_is_rebuilt() {
    let real_bin = plumb_testcluster::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    let real_build = real_bin.parent().expect("build dir");
    let hash = real_build.file_name().expect("hash");
    // Beside the real cache, so that hard links work (same file system).
    let plumb_cache = real_build
        .parent()
        .and_then(Path::parent)
        .expect("cache root");
    let cache = tempfile::Builder::new()
        .prefix(".test-cache-")
        .tempdir_in(plumb_cache)
        .expect("cache");
    let copy = cache.path().join("testcluster").join(hash);
    std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
    // Hard links: cheap, and the rebuild replaces directories, never writes into these files.
    let status = Command::new("cp")
        .arg("-al")
        .arg(real_build)
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    std::fs::remove_file(copy.join("complete")).expect("remove marker");
    // The leftover of an interrupted build goes too.
    let leftover = cache.path().join("testcluster").join(".build-interrupted");
    std::fs::create_dir_all(leftover.join("bin")).expect("leftover");
    let kube_apiserver = copy.join("bin/kube-apiserver");
    let inode_before =
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&kube_apiserver).expect("stat"));

    let out = Command::new(build_script())
        .env("PLUMB_CACHE_DIR", cache.path())
        .output()
        .expect("run build script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rebuild failed: {stderr}");
    assert!(
        stderr.contains("found an incomplete build"),
        "stderr: {stderr}"
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.trim(), copy.join("bin").display().to_string());
    assert!(copy.join("complete").is_file());
    assert!(
        !leftover.exists(),
        "the interrupted build's directory was kept"
    );
    let inode_after =
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&kube_apiserver).expect("stat"));
    assert_ne!(inode_before, inode_after, "kube-apiserver was not rebuilt");
    // A second run reuses the now complete cache without building.
    let again = Command::new(build_script())
        .env("PLUMB_CACHE_DIR", cache.path())
        .output()
        .expect("run build script");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("using cached build"));
}

#[test]
fn a_port_taken_after_it_was_chosen_is_retried_then_reported() {
    // etcd's peer port is forced (the last flag wins) onto a port another process holds, so
    // every attempt loses the "race": the retry loop runs its course and says so.
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let options = Options {
        extra_args: vec![(
            Component::Etcd,
            format!("--listen-peer-urls=http://127.0.0.1:{port}"),
        )],
        ..Options::default()
    };
    let err = TestCluster::start(options).expect_err("started on a taken peer port");
    match &err {
        Error::PortsKeptColliding { attempts, last } => {
            assert_eq!(*attempts, 3);
            assert!(
                matches!(last.as_ref(), Error::ComponentExited { component: "etcd", tail, .. }
                    if tail.contains("address already in use")),
                "{last}"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
}
