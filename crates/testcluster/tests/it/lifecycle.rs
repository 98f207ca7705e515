//! Start-up and teardown: nothing outlives the cluster's owner, however it ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plumb_testcluster::{Options, TestCluster};

/// Processes whose command line mentions `needle` (our clusters' temporary paths).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!("{pid}: {cmdline}"));
            }
        }
    }
    found
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Waits (up to a minute) until nothing mentions `tmp` and no cluster directory is left in it.
fn assert_all_gone(tmp: &Path) {
    let needle = tmp.display().to_string();
    let started = Instant::now();
    loop {
        let procs = processes_mentioning(&needle);
        let dirs: Vec<PathBuf> = std::fs::read_dir(tmp)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if procs.is_empty() && dirs.is_empty() {
            return;
        }
        if started.elapsed() > Duration::from_secs(60) {
            panic!("left behind: processes {procs:#?}, directories {dirs:#?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn server_port(kubeconfig: &Path) -> u16 {
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
        .expect("server line");
    server.parse().expect("port")
}

/// Starts the `test-cluster` binary with its temporary files under `tmp`.
fn launch(dir: &Path, tmp: &Path, extra: &[&str]) -> Child {
    let bin_dir = plumb_testcluster::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    Command::new(env!("CARGO_BIN_EXE_test-cluster"))
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .env("TMPDIR", tmp)
        .env(plumb_testcluster::BIN_DIR_ENV, bin_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn test-cluster")
}

fn wait_for_file(path: &Path, child: &mut Child) {
    let started = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "test-cluster exited before writing {}: {status}",
                path.display()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "no {} after 240s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "kill -{name} failed"
    );
}

#[test]
fn stop_removes_processes_directory_and_frees_the_port() {
    let cluster = TestCluster::start(Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let version = cluster
        .kubectl_output(&["get", "--raw", "/version"])
        .expect("version");
    assert!(version.contains("\"gitVersion\": \"v1.37.2\""), "{version}");
    let dir = cluster.dir().to_path_buf();
    let port = server_port(cluster.kubeconfig_path());
    assert!(!port_is_free(port));
    cluster.stop();
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(processes_mentioning(&dir.display().to_string()).is_empty());
    assert!(port_is_free(port));
}

#[test]
fn sigkill_of_the_owner_leaves_nothing_running() {
    let work = tempfile::tempdir().expect("tempdir");
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    let mut child = launch(work.path(), &tmp, &["--workloads"]);
    let kubeconfig = work.path().join("kubeconfig");
    wait_for_file(&kubeconfig, &mut child);
    let port = server_port(&kubeconfig);
    assert!(!processes_mentioning(&tmp.display().to_string()).is_empty());
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_all_gone(&tmp);
    assert!(port_is_free(port));
}

#[test]
fn sigterm_stops_the_test_cluster_command() {
    let work = tempfile::tempdir().expect("tempdir");
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    let mut child = launch(work.path(), &tmp, &["--workloads", "--nodes", "2"]);
    let kubeconfig = work.path().join("kubeconfig");
    wait_for_file(&kubeconfig, &mut child);
    // The written kubeconfig works with an independent kubectl run, and both nodes are Ready.
    let kubectl = plumb_testcluster::binary("kubectl").expect("kubectl");
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}",
        ])
        .output()
        .expect("kubectl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "kwok-node-0=True kwok-node-1=True",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    signal(&child, "TERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        !kubeconfig.exists(),
        "kubeconfig of a stopped cluster left behind"
    );
    assert_all_gone(&tmp);
}

#[test]
fn ctrl_c_during_start_up_leaves_nothing_running() {
    let work = tempfile::tempdir().expect("tempdir");
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    let mut child = launch(work.path(), &tmp, &["--workloads"]);
    // Interrupt once etcd runs, before the cluster is ready.
    let needle = tmp.display().to_string();
    let started = Instant::now();
    while processes_mentioning(&needle).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no component started"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("test-cluster exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, "INT");
    let status = child.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(130),
        "exit status after SIGINT during start-up: {status}"
    );
    assert!(!work.path().join("kubeconfig").exists());
    assert_all_gone(&tmp);
}
