//! The differential judge: every case in crates/testcluster/differential/ against the real
//! kube-apiserver (the reference) and plumb's embedded API server.

use std::io::Write as _;
use std::path::Path;

use plumb_testcluster::differential::{Report, Target, load_cases, run_case};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_api_server_answers_like_kube_apiserver() {
    let mut cases = load_cases(&Path::new(env!("CARGO_MANIFEST_DIR")).join("differential"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cases.len() >= 10, "only {} cases", cases.len());
    // By hand, while working on a few cases: PLUMB_DIFFERENTIAL_ONLY=58,59 runs the cases
    // whose names start with one of these.
    if let Ok(only) = std::env::var("PLUMB_DIFFERENTIAL_ONLY") {
        let prefixes: Vec<&str> = only.split(',').map(str::trim).collect();
        cases.retain(|c| prefixes.iter().any(|p| c.name.starts_with(p)));
        assert!(!cases.is_empty(), "no case starts with any of {only:?}");
    }

    let cluster = tokio::task::spawn_blocking(plumb_testcluster::TestCluster::shared)
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{e}"));
    // The kubectl built with the cluster (same version); another one can be tried by hand.
    let kubectl = std::env::var_os("PLUMB_DIFFERENTIAL_KUBECTL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| cluster.bin_dir().join("kubectl"));
    let real = Target {
        label: "kube-apiserver".into(),
        kubeconfig: cluster.kubeconfig_path().to_path_buf(),
        kubectl: kubectl.clone(),
    };

    let data = tempfile::tempdir().expect("tempdir");
    let mut config = plumb_apiserver::Config::new(
        data.path().join("data"),
        "127.0.0.1:0".parse().expect("addr"),
    );
    // Like for like: the reference is the shared cluster with kube-controller-manager,
    // kube-scheduler and kwok (whose Pods start at once), so the embedded side runs its
    // workload simulation with no start delay, and both allocate Service IPs from the same
    // range.
    config.workloads.enabled = true;
    config.workloads.pod_start_delay = std::time::Duration::ZERO;
    config.workloads.job_run_time = std::time::Duration::ZERO;
    config.service_cidr =
        plumb_apiserver::ServiceCidr::parse("10.0.0.0/24").expect("the test cluster's range");
    let server = plumb_apiserver::start(config)
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
        // The two servers are independent: run the case on both at once.
        let (reference, candidate) = tokio::join!(
            run_case(case, &real, &real_client),
            run_case(case, &embedded, &embedded_client)
        );
        let reference =
            reference.unwrap_or_else(|e| panic!("the reference run failed (a broken case): {e}"));
        let candidate = match candidate {
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
    let mut stderr = std::io::stderr();
    let _ = writeln!(stderr, "{}", report.summary());
    for (case, _, _) in &report.known {
        let _ = writeln!(
            stderr,
            "differential:   known difference: {case} (see COMPATIBILITY.md)"
        );
    }
    for (case, _) in &report.failed {
        let _ = writeln!(stderr, "differential:   UNEXPECTED difference: {case}");
    }
    if let Ok(path) = std::env::var("PLUMB_DIFFERENTIAL_REPORT") {
        let _ = std::fs::write(path, format!("{}\n{text}", report.summary()));
    }
    assert!(
        report.failed.is_empty() && report.broken.is_empty(),
        "{}\n{text}",
        report.summary()
    );
}

mod normalisation {
    use std::collections::BTreeMap;

    use plumb_testcluster::differential::{
        Case, Report, Step, StepResult, compare, load_cases, normalise,
    };
    use proptest::prelude::*;

    fn kubectl_step() -> Step {
        Step {
            kubectl: Some(vec!["get".into()]),
            ..Step::default()
        }
    }

    #[test]
    fn per_server_values_are_replaced_and_keys_sorted() {
        let raw = r#"{"metadata":{"uid":"0b9c7a7e-2f6d-4c55-9a43-0c4ea5a8f1e2","resourceVersion":"123",
            "creationTimestamp":"2026-11-23T20:01:02Z","generateName":"job-","name":"job-x7k2p"},"kind":"ConfigMap","data":{"b":"2","a":"1"}}"#;
        let golden = r#"{
  "data": {
    "a": "1",
    "b": "2"
  },
  "kind": "ConfigMap",
  "metadata": {
    "creationTimestamp": "<time>",
    "generateName": "job-",
    "name": "<generated>",
    "resourceVersion": "<resourceVersion>",
    "uid": "<uid>"
  }
}"#;
        assert_eq!(normalise(raw, &kubectl_step()), golden);
    }

    #[test]
    fn managed_fields_entries_compare_whatever_second_they_were_written_in() {
        let later_first = r#"{"metadata":{"managedFields":[
            {"manager":"b","operation":"Apply","time":"2026-11-23T20:01:01Z"},
            {"manager":"a","operation":"Apply","time":"2026-11-23T20:01:02Z"}]}}"#;
        let same_second = r#"{"metadata":{"managedFields":[
            {"manager":"a","operation":"Apply","time":"2026-11-23T20:01:02Z"},
            {"manager":"b","operation":"Apply","time":"2026-11-23T20:01:02Z"}]}}"#;
        assert_eq!(
            normalise(later_first, &kubectl_step()),
            normalise(same_second, &kubectl_step())
        );
        // Other lists keep their order.
        assert_ne!(
            normalise(r#"{"items":[1,2]}"#, &kubectl_step()),
            normalise(r#"{"items":[2,1]}"#, &kubectl_step())
        );
    }

    #[test]
    fn table_ages_ports_and_yaml_resource_versions_are_replaced() {
        let table = "NAME   DATA   AGE\nt1     2      5s\nt2     0      3m12s\n";
        assert_eq!(
            normalise(table, &kubectl_step()),
            "NAME   DATA   AGE\nt1     2      <age>\nt2     0      <age>"
        );
        let yaml = "metadata:\n  resourceVersion: \"250\"\nserver: https://127.0.0.1:41957\n";
        assert_eq!(
            normalise(yaml, &kubectl_step()),
            "metadata:\n  resourceVersion: <resourceVersion>\nserver: https://<server>"
        );
    }

    #[test]
    fn ignored_pointers_with_wildcards_are_removed_from_json_lines() {
        let step = Step {
            ignore: vec![
                "/object/metadata/managedFields".into(),
                "/items/*/kind".into(),
            ],
            ..kubectl_step()
        };
        let lines = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"managedFields\":[1]}}}\n\
                     {\"items\":[{\"kind\":\"X\",\"v\":1},{\"kind\":\"Y\",\"v\":2}]}";
        let out = normalise(lines, &step);
        assert!(
            !out.contains("managedFields") && !out.contains("\"kind\""),
            "{out}"
        );
        assert!(
            out.contains("\"v\": 2") && out.contains("\"ADDED\""),
            "{out}"
        );
    }

    #[test]
    fn selections_keep_the_named_items_and_drop_lists_they_empty() {
        use plumb_testcluster::differential::Selection;
        let step = Step {
            select: BTreeMap::from([
                (
                    "/items".to_string(),
                    Selection {
                        key: "/metadata/name".into(),
                        values: vec!["".into(), "apps".into()],
                    },
                ),
                (
                    "/items/*/resources/*/subresources".to_string(),
                    Selection {
                        key: "/subresource".into(),
                        values: vec!["status".into()],
                    },
                ),
            ]),
            ..kubectl_step()
        };
        let reference = r#"{"items":[{"metadata":{},"resources":[{"resource":"sa","subresources":[{"subresource":"token"}]}]},
            {"metadata":{"name":"authentication.k8s.io"}},{"metadata":{"name":"apps"},"resources":[{"resource":"deployments",
            "subresources":[{"subresource":"scale"},{"subresource":"status"}]}]}]}"#;
        // The candidate serves no token subresource and no authentication group, and leaves
        // out the subresources of a resource without any, as kube-apiserver does.
        let candidate = r#"{"items":[{"metadata":{},"resources":[{"resource":"sa"}]},{"metadata":{"name":"apps"},
            "resources":[{"resource":"deployments","subresources":[{"subresource":"status"}]}]}]}"#;
        assert_eq!(normalise(reference, &step), normalise(candidate, &step));
        assert!(!normalise(reference, &step).contains("authentication"));
        // Items are kept in their order: a different order still differs.
        let reordered = r#"{"items":[{"metadata":{"name":"apps"},"resources":[{"resource":"deployments",
            "subresources":[{"subresource":"status"}]}]},{"metadata":{},"resources":[{"resource":"sa"}]}]}"#;
        assert_ne!(normalise(reference, &step), normalise(reordered, &step));
    }

    fn result(pairs: &[(&'static str, &str)]) -> StepResult {
        pairs
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect::<BTreeMap<_, _>>()
    }

    fn case(known_step: Option<usize>) -> Case {
        Case {
            name: "c".into(),
            description: "d".into(),
            known_difference: known_step.map(|_| "reason".into()),
            known_step,
            steps: vec![kubectl_step(), kubectl_step(), kubectl_step()],
        }
    }

    #[test]
    fn the_first_differing_step_is_reported_and_checked_against_the_known_step() {
        let same = result(&[("exit", "0"), ("stdout", "x")]);
        let other = result(&[("exit", "1"), ("stdout", "x")]);
        let reference = vec![same.clone(), same.clone(), same.clone()];
        let candidate = vec![same.clone(), other.clone(), other];
        let (step, differences) = compare(&case(None), &reference, &candidate).expect("differs");
        assert_eq!(step, 2);
        assert_eq!(differences.len(), 1, "{differences:?}");

        let mut report = Report::default();
        report.record(&case(Some(2)), &reference, &candidate);
        report.record(&case(Some(3)), &reference, &candidate);
        report.record(&case(None), &reference, &reference);
        report.record(&case(Some(1)), &reference, &reference);
        assert_eq!(report.known.len(), 1);
        assert_eq!(
            report.failed.len(),
            1,
            "a difference before the known step is unexpected"
        );
        assert_eq!(report.passed.len(), 2);
        assert_eq!(report.known_but_passing, vec!["c".to_string()]);
        assert!(
            report
                .summary()
                .starts_with("differential: 2/4 cases agree"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn malformed_case_files_are_rejected_with_their_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.yaml");
        std::fs::write(
            &path,
            "description: x\nsteps:\n  - kubectl: [get]\n    http: {method: GET, path: /}\n",
        )
        .expect("write");
        let err = load_cases(dir.path())
            .expect_err("accepted a step with kubectl and http")
            .to_string();
        assert!(
            err.contains("bad.yaml") && err.contains("exactly one of"),
            "{err}"
        );
        std::fs::write(&path, "description: x\nstepz: []\n").expect("write");
        let err = load_cases(dir.path())
            .expect_err("accepted an unknown field")
            .to_string();
        assert!(err.contains("bad.yaml"), "{err}");
    }

    proptest! {
        #[test]
        fn normalising_twice_changes_nothing(text in "[ -~\n]{0,200}") {
            let once = normalise(&text, &kubectl_step());
            prop_assert_eq!(normalise(&once, &kubectl_step()), once.clone());
        }
    }
}
