//! Persistence: restarts keep everything and resourceVersion continues upward; SIGKILL in
//! the middle of a burst loses no acknowledged write; newer-format and corrupt stores are
//! refused with a clear error and left byte-for-byte untouched.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::support::TestServer;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": name}})).expect("cm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_objects_and_resource_version_continues() {
    let s = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let mut last = 0u64;
    for i in 0..20 {
        let c = api
            .create(&PostParams::default(), &cm(&format!("c{i}")))
            .await
            .expect("create");
        last = c
            .metadata
            .resource_version
            .expect("rv")
            .parse()
            .expect("u64");
    }
    let token = s.server().token().to_string();
    let dir = s.stop().await;

    let s = TestServer::start_in(dir, |_| {}).await;
    assert_eq!(s.server().token(), token, "the token is kept");
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let list = api.list(&ListParams::default()).await.expect("list");
    // Plus the namespace's kube-root-ca.crt.
    assert_eq!(list.items.len(), 21);
    let list_rv: u64 = list
        .metadata
        .resource_version
        .expect("rv")
        .parse()
        .expect("u64");
    assert_eq!(list_rv, last);
    let next = api
        .create(&PostParams::default(), &cm("after"))
        .await
        .expect("create");
    let next_rv: u64 = next
        .metadata
        .resource_version
        .expect("rv")
        .parse()
        .expect("u64");
    assert!(next_rv > last, "{next_rv} > {last}");
    // kubectl agrees too, with the rewritten kubeconfig.
    assert!(
        s.ok(&["get", "cm", "c7", "-o", "jsonpath={.data.v}"])
            .await
            .contains("c7")
    );
}

pub(crate) struct ChildServer {
    pub(crate) child: Child,
    pub(crate) kubeconfig: std::path::PathBuf,
}

pub(crate) fn spawn_child(data_dir: &std::path::Path) -> ChildServer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plumb-apiserver"))
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server process starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reads the first line");
    assert!(
        line.starts_with("listening on https://"),
        "unexpected first line {line:?}"
    );
    ChildServer {
        child,
        kubeconfig: data_dir.join("kubeconfig"),
    }
}

async fn client_for(kubeconfig: &std::path::Path) -> kube::Client {
    let yaml = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("parses");
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    kube::Client::try_from(config).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server = spawn_child(&data);
    let client = client_for(&server.kubeconfig).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..16 {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let acknowledged = Arc::clone(&acknowledged);
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                match api.create(&PostParams::default(), &cm(&name)).await {
                    Ok(_) => acknowledged.lock().expect("lock").push(name),
                    Err(_) => return,
                }
            }
        }));
    }
    // Let the burst run, then kill the server without warning.
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if acknowledged.lock().expect("lock").len() >= 300 {
            break;
        }
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    for w in writers {
        w.await.expect("writer task");
    }
    let acked = acknowledged.lock().expect("lock").clone();
    assert!(acked.len() >= 300);

    let mut restarted = spawn_child(&data);
    let api: Api<ConfigMap> = Api::namespaced(client_for(&restarted.kubeconfig).await, "default");
    let stored: std::collections::HashSet<String> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !stored.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost after SIGKILL, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    restarted.child.kill().expect("kill");
    restarted.child.wait().expect("reaped");
}

fn sha(path: &std::path::Path) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(std::fs::read(path).expect("read")).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_format_is_refused_and_untouched() {
    let s = TestServer::start().await;
    let data = s.data_dir();
    let dir = s.stop().await;
    let store = data.join("store.redb");
    {
        let db = redb::Database::open(&store).expect("open");
        let txn = db.begin_write().expect("txn");
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .expect("meta");
            meta.insert("format_version", 99).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let before = sha(&store);
    let err = plumb_apiserver::start(plumb_apiserver::Config::new(
        &data,
        "127.0.0.1:0".parse().expect("addr"),
    ))
    .await
    .err()
    .expect("refused");
    let message = err.to_string();
    assert!(
        matches!(err, plumb_apiserver::Error::NewerFormat { found: 99, .. }),
        "{message}"
    );
    assert!(
        message.contains("store format 99 is newer") && message.contains("store.redb"),
        "{message}"
    );
    assert_eq!(sha(&store), before, "the refused store is untouched");
    drop(dir);
}

/// A store written by a format-1 build (objects without managedFields) opens, is marked
/// format 2, and its untracked objects are adopted by server-side apply as Kubernetes
/// adopts objects without managedFields (`before-first-apply`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_1_store_is_upgraded_and_its_objects_adopted() {
    let s = TestServer::start().await;
    let (code, _) = s
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            serde_json::to_vec(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "old"}, "data": {"a": "1"}}))
            .expect("json"),
        )
        .await;
    assert_eq!(code, 201);
    let data = s.data_dir();
    let dir = s.stop().await;
    let store = data.join("store.redb");
    let objects = redb::TableDefinition::<&str, &[u8]>::new("objects");
    let meta_table = redb::TableDefinition::<&str, u64>::new("meta");
    {
        // Rewrite it as format 1 wrote it: no managedFields anywhere.
        let db = redb::Database::open(&store).expect("open");
        let txn = db.begin_write().expect("txn");
        {
            let mut table = txn.open_table(objects).expect("objects");
            let mut rewritten = Vec::new();
            for entry in redb::ReadableTable::iter(&table).expect("iter") {
                let (k, v) = entry.expect("entry");
                let mut object: serde_json::Value =
                    serde_json::from_slice(v.value()).expect("object json");
                if let Some(meta) = object["metadata"].as_object_mut() {
                    meta.remove("managedFields");
                }
                rewritten.push((
                    k.value().to_string(),
                    serde_json::to_vec(&object).expect("json"),
                ));
            }
            for (k, v) in rewritten {
                table.insert(k.as_str(), v.as_slice()).expect("insert");
            }
            let mut meta = txn.open_table(meta_table).expect("meta");
            meta.insert("format_version", 1).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let s = TestServer::start_in(dir, |_| {}).await;
    let (_, old) = s.get("/api/v1/namespaces/default/configmaps/old").await;
    assert_eq!(old["data"]["a"], "1");
    assert!(old["metadata"].get("managedFields").is_none(), "{old}");
    let (code, conflict) = s
        .raw(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/old?fieldManager=plumb",
            "application/apply-patch+yaml",
            serde_json::to_vec(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "old"}, "data": {"a": "2"}}))
            .expect("json"),
        )
        .await;
    assert_eq!(code, 409, "{conflict}");
    assert_eq!(
        conflict["message"],
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .data.a"
    );
    let data = s.data_dir();
    let dir = s.stop().await;
    {
        let db = redb::ReadOnlyDatabase::open(data.join("store.redb")).expect("open");
        let txn = redb::ReadableDatabase::begin_read(&db).expect("txn");
        let meta = txn.open_table(meta_table).expect("meta");
        let format = meta
            .get("format_version")
            .expect("get")
            .expect("format")
            .value();
        assert_eq!(format, 2);
    }
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_store_is_refused_and_untouched() {
    let s = TestServer::start().await;
    let data = s.data_dir();
    let _dir = s.stop().await;
    let store = data.join("store.redb");
    // Garbage over the whole header.
    let mut bytes = std::fs::read(&store).expect("read");
    for b in bytes.iter_mut().take(4096) {
        *b = 0x5a;
    }
    std::fs::write(&store, &bytes).expect("write");
    let before = sha(&store);
    let err = plumb_apiserver::start(plumb_apiserver::Config::new(
        &data,
        "127.0.0.1:0".parse().expect("addr"),
    ))
    .await
    .err()
    .expect("refused");
    let message = err.to_string();
    assert!(
        matches!(err, plumb_apiserver::Error::Corrupt { .. }),
        "{message}"
    );
    assert!(
        message.contains("corrupt") && message.contains("was not modified"),
        "{message}"
    );
    assert_eq!(sha(&store), before, "the refused store is untouched");

    // A file that is not a store at all.
    std::fs::write(&store, b"hello, I am not a database").expect("write");
    let before = sha(&store);
    let err = plumb_apiserver::start(plumb_apiserver::Config::new(
        &data,
        "127.0.0.1:0".parse().expect("addr"),
    ))
    .await
    .err()
    .expect("refused");
    assert!(
        matches!(err, plumb_apiserver::Error::Corrupt { .. }),
        "{err}"
    );
    assert_eq!(sha(&store), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_server_on_the_same_store_is_refused() {
    let s = TestServer::start().await;
    let err = plumb_apiserver::start(plumb_apiserver::Config::new(
        s.data_dir(),
        "127.0.0.1:0".parse().expect("addr"),
    ))
    .await
    .err()
    .expect("refused");
    assert!(matches!(err, plumb_apiserver::Error::InUse { .. }), "{err}");
    // The first one still serves.
    s.ok(&["get", "ns", "default"]).await;
}
