//! The differential judge: every case in crates/testcluster/differential/ against the real
//! kube-apiserver (the reference) and plumb's embedded API server.

use std::io::Write as _;
use std::path::Path;

use plumb_testcluster::differential::{Report, Target, load_cases, run_case};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_api_server_answers_like_kube_apiserver() {
    let cases = load_cases(&Path::new(env!("CARGO_MANIFEST_DIR")).join("differential"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cases.len() >= 10, "only {} cases", cases.len());

    let cluster = tokio::task::spawn_blocking(plumb_testcluster::TestCluster::shared)
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{e}"));
    let kubectl = cluster.bin_dir().join("kubectl");
    let real = Target {
        label: "kube-apiserver".into(),
        kubeconfig: cluster.kubeconfig_path().to_path_buf(),
        kubectl: kubectl.clone(),
    };

    let data = tempfile::tempdir().expect("tempdir");
    let server = plumb_apiserver::start(plumb_apiserver::Config::new(
        data.path().join("data"),
        "127.0.0.1:0".parse().expect("addr"),
    ))
    .await
    .unwrap_or_else(|e| panic!("starting the embedded API server: {e}"));
    let embedded_kubeconfig = data.path().join("kubeconfig");
    server
        .write_kubeconfig(&embedded_kubeconfig)
        .expect("kubeconfig");
    let embedded = Target {
        label: "plumb embedded".into(),
        kubeconfig: embedded_kubeconfig,
        kubectl,
    };

    let real_client = real.client().await.unwrap_or_else(|e| panic!("{e}"));
    let embedded_client = embedded.client().await.unwrap_or_else(|e| panic!("{e}"));
    let mut report = Report::default();
    for case in &cases {
        let reference = run_case(case, &real, &real_client)
            .await
            .unwrap_or_else(|e| panic!("the reference run failed (a broken case): {e}"));
        let candidate = match run_case(case, &embedded, &embedded_client).await {
            Ok(results) => results,
            // A step that cannot even run on the embedded server is a difference too.
            Err(e) => {
                let mut results = Vec::new();
                results.resize_with(case.steps.len(), || {
                    std::collections::BTreeMap::from([("error", e.to_string())])
                });
                results
            }
        };
        report.record(case, &reference, &candidate);
    }
    server.shutdown().await;

    let mut text = String::new();
    for (case, differences) in &report.failed {
        text.push_str(&format!(
            "\n== {case}: UNEXPECTED DIFFERENCE\n{}\n",
            differences.join("\n")
        ));
    }
    for (case, reason, differences) in &report.known {
        text.push_str(&format!(
            "\n== {case}: known difference ({reason})\n{}\n",
            differences.join("\n")
        ));
    }
    for (case, why) in &report.broken {
        text.push_str(&format!(
            "\n== {case}: BROKEN CASE (reference run): {why}\n"
        ));
    }
    for case in &report.known_but_passing {
        text.push_str(&format!(
            "\n== {case}: marked known_difference but agrees now: remove the mark\n"
        ));
    }
    // Straight to the file descriptor, past the test harness's capture: CI shows the count.
    let _ = writeln!(std::io::stderr(), "{}", report.summary());
    if let Ok(path) = std::env::var("PLUMB_DIFFERENTIAL_REPORT") {
        let _ = std::fs::write(path, format!("{}\n{text}", report.summary()));
    }
    assert!(
        report.failed.is_empty() && report.broken.is_empty(),
        "{}\n{text}",
        report.summary()
    );
}
