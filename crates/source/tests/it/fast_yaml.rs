//! The fast path for plain block YAML changes nothing a directory render returns: the same
//! repository rendered with it and with serde-saphyr alone gives the same objects, files and
//! lines, for documents it reads and for those it hands back (block scalars, anchors, flow
//! collections, floats), and malformed YAML is still reported with its file and line.

use tokio_util::sync::CancellationToken;

use crate::servers::Repo;
use crate::{request, service_with, source};

const PLAIN: &str = r#"# a comment before the document
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app.kubernetes.io/name: web   # trailing comment
  annotations:
    "example.com/quoted": 'it''s quoted'
spec:
  replicas: 3
  revisionHistoryLimit: 0
  paused: false
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      automountServiceAccountToken: no
      containers:
      - name: web
        image: nginx:1.27
        args: []
        ports:
          - containerPort: 8080
            protocol: TCP
        env:
        -   name: EMPTY
            value:
        - name: QUOTED
          value: "a \"b\" c"
      volumes:
      - name: cache
        emptyDir: {}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
    targetPort: 8080
"#;

const TRICKY: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: tricky
  labels: &labels
    tier: backend
  annotations: *labels
data:
  script: |
    #!/bin/sh
    echo "hello"
  folded: >
    one
    two
  ratio: "1.5"
  list: "[a, b]"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: aliased
data:
  float: "0.25"
binaryData: {}
---
apiVersion: batch/v1
kind: Job
metadata: {name: flow}
spec:
  backoffLimit: 1
  activeDeadlineSeconds: 1.5e2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["sh", "-c", "true"]}]
"#;

#[tokio::test]
async fn the_fast_yaml_path_renders_exactly_what_serde_saphyr_renders() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "fast-yaml");
    repo.commit(
        &[
            ("app/plain.yaml", PLAIN),
            ("app/tricky.yaml", TRICKY),
            ("broken/bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n"),
        ],
        "yaml",
    );
    let fast_dir = tempfile::tempdir().expect("tmp");
    let fast = service_with(fast_dir.path(), |_| {});
    let saphyr_dir = tempfile::tempdir().expect("tmp");
    let saphyr = service_with(saphyr_dir.path(), |c| c.render.yaml_fast_path = false);
    let cancel = CancellationToken::new();
    let app = request(vec![source(&repo.file_url(), "main", "app")]);
    let with_fast = fast.render(&app, &cancel).await.expect("fast");
    let without = saphyr.render(&app, &cancel).await.expect("saphyr");
    assert_eq!(with_fast.manifests.len(), 5);
    assert_eq!(with_fast.manifests, without.manifests);
    let deployment = &with_fast.manifests[0];
    assert_eq!(deployment.line, Some(1));
    assert_eq!(deployment.object["spec"]["replicas"], 3);
    assert_eq!(
        deployment.object["spec"]["template"]["spec"]["automountServiceAccountToken"],
        false
    );
    assert_eq!(with_fast.manifests[1].line, Some(39));
    assert_eq!(
        with_fast.manifests[2].object["metadata"]["annotations"]["tier"],
        "backend"
    );

    // Malformed YAML: the same message, file and line either way.
    let broken = request(vec![source(&repo.file_url(), "main", "broken")]);
    let a = fast.render(&broken, &cancel).await.expect_err("fast");
    let b = saphyr.render(&broken, &cancel).await.expect_err("saphyr");
    assert_eq!(a.to_string(), b.to_string());
    assert!(a.to_string().contains("broken/bad.yaml:9"), "{a}");
}
