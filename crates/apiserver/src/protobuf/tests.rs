//! Golden tests against encodings made by k8s.io/api itself (tools/protoschema -golden), bad
//! input, and property tests that no body makes the decoder panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::wire::encode_varint;
use super::*;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/protobuf")
}

/// Every golden pair: (name, protobuf body, the JSON Go's encoding/json writes for it).
fn golden() -> Vec<(String, Vec<u8>, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(golden_dir()).expect("golden directory") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("pb") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let pb = std::fs::read(&path).unwrap();
        let json: Value =
            serde_json::from_slice(&std::fs::read(path.with_extension("json")).unwrap()).unwrap();
        out.push((name, pb, json));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn field(out: &mut Vec<u8>, n: u64, b: &[u8]) {
    encode_varint((n << 3) | 2, out);
    encode_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::new();
    field(&mut type_meta, 1, api_version.as_bytes());
    field(&mut type_meta, 2, kind.as_bytes());
    let mut body = MAGIC.to_vec();
    field(&mut body, 1, &type_meta);
    field(&mut body, 2, raw);
    field(&mut body, 4, b"application/vnd.kubernetes.protobuf");
    body
}

#[test]
fn decodes_every_golden_encoding_to_what_go_writes_as_json() {
    let pairs = golden();
    // The hand-written samples and two random objects of each of the 34 kinds.
    assert!(pairs.len() >= 70, "only {} golden pairs", pairs.len());
    let mut failures = Vec::new();
    for (name, pb, want) in &pairs {
        match decode(pb) {
            Ok(got) if &got == want => {}
            Ok(got) => failures.push(format!(
                "{name}: decoded\n{}\nwant\n{}",
                serde_json::to_string(&got).unwrap(),
                serde_json::to_string(want).unwrap()
            )),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn decodes_what_kubectl_create_deployment_sends() {
    let pb = std::fs::read(golden_dir().join("deployment.pb")).unwrap();
    let v = decode(&pb).unwrap();
    assert_eq!(v["apiVersion"], "apps/v1");
    assert_eq!(v["kind"], "Deployment");
    assert_eq!(v["spec"]["replicas"], 3);
    let container = &v["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert_eq!(container["resources"]["limits"]["cpu"], "500m");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "http");
    assert_eq!(v["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(v["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 1);
    assert_eq!(v["spec"]["template"]["spec"]["priority"], -5);
    // Inline VolumeSource: its configMap is promoted into the volume.
    assert_eq!(
        v["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
        "conf"
    );
    assert_eq!(v["metadata"].get("creationTimestamp"), None);
}

#[test]
fn decodes_times_quantities_and_raw_json() {
    let pod = decode(&std::fs::read(golden_dir().join("pod-metadata.pb")).unwrap()).unwrap();
    assert_eq!(pod["metadata"]["creationTimestamp"], "2024-05-06T07:08:09Z");
    assert_eq!(
        pod["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:metadata": {"f:labels": {}}})
    );
    let lease = decode(&std::fs::read(golden_dir().join("lease.pb")).unwrap()).unwrap();
    assert_eq!(lease["spec"]["acquireTime"], "2024-01-02T03:04:05.123456Z");
    let crd = decode(&std::fs::read(golden_dir().join("crd.pb")).unwrap()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["size"]["default"], 3);
    assert_eq!(spec["properties"]["size"]["maximum"], 5);
    assert_eq!(spec["properties"]["size"]["minimum"], -1.5);
    assert_eq!(spec["properties"]["extra"]["additionalProperties"], false);
    assert_eq!(spec["dependencies"]["size"], json!(["color"]));
}

#[test]
fn unknown_kinds_are_refused_by_name() {
    let err = decode(&envelope("example.com/v1", "Widget", &[])).unwrap_err();
    assert_eq!(
        err,
        ProtobufError::UnsupportedKind("apiVersion \"example.com/v1\", kind \"Widget\"".into())
    );
    assert_eq!(decode(b"{\"kind\":\"Pod\"}"), Err(ProtobufError::NoMagic));
}

#[test]
fn bad_bodies_name_where_they_break() {
    // metadata (field 1) whose name (field 1) claims 9 bytes but has 2.
    let err = decode(&envelope(
        "v1",
        "ConfigMap",
        &[0x0a, 0x04, 0x0a, 0x09, b'a', b'b'],
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed protobuf at ConfigMap.metadata.name: length-delimited field runs past the end at byte 2"
    );
    // spec.replicas (varint field) sent as a string.
    let mut spec = Vec::new();
    field(&mut spec, 1, b"3");
    let mut raw = Vec::new();
    field(&mut raw, 2, &spec);
    let err = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "malformed protobuf at Deployment.spec.replicas: a length-delimited value"
        ),
        "{err}"
    );
    // Embedded JSON that is not JSON.
    let mut data = Vec::new();
    field(&mut data, 1, b"{not json");
    let mut raw = Vec::new();
    field(&mut raw, 2, &data);
    let err = decode(&envelope("apps/v1", "ControllerRevision", &raw)).unwrap_err();
    assert!(
        err.to_string()
            .contains("ControllerRevision.data: embedded JSON does not parse"),
        "{err}"
    );
    // A truncated envelope.
    let body = envelope("v1", "Namespace", &[0x0a, 0x00]);
    assert!(matches!(
        decode(&body[..body.len() - 3]),
        Err(ProtobufError::Malformed { .. })
    ));
}

#[test]
fn hostile_nesting_is_an_error_not_a_stack_overflow() {
    // JSONSchemaProps.not (field 28) nested 10,000 times inside a CRD's schema.
    let mut props: Vec<u8> = Vec::new();
    for _ in 0..10_000 {
        let mut outer = Vec::new();
        field(&mut outer, 28, &props);
        props = outer;
    }
    let mut validation = Vec::new();
    field(&mut validation, 1, &props);
    let mut version = Vec::new();
    field(&mut version, 4, &validation);
    let mut spec = Vec::new();
    field(&mut spec, 7, &version);
    let mut raw = Vec::new();
    field(&mut raw, 2, &spec);
    let err = decode(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &raw,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("nested deeper than"), "{err}");
}

#[test]
fn every_truncation_of_a_golden_object_is_an_error() {
    for (name, pb, _) in golden().iter().filter(|(n, ..)| !n.starts_with("random")) {
        // Cuts inside the object (the envelope's raw field, after typeMeta) always break a
        // length.
        let mut r = super::wire::Reader::new(&pb[MAGIC.len()..]);
        r.field().unwrap();
        let raw_start = MAGIC.len() + r.position();
        let raw_end = pb.len() - (2 + "application/vnd.kubernetes.protobuf".len());
        for cut in raw_start + 1..raw_end {
            assert!(
                matches!(
                    decode(&pb[..cut]),
                    Err(ProtobufError::Malformed { .. } | ProtobufError::NoMagic)
                ),
                "{name} cut at {cut} decoded"
            );
        }
    }
}

proptest! {
    #[test]
    fn corrupted_golden_bodies_never_panic(
        which in 0usize..1000,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)
    ) {
        let pairs = golden_cache();
        let mut pb = pairs[which % pairs.len()].clone();
        for (at, byte) in flips {
            let i = at % pb.len();
            pb[i] = byte;
        }
        let _ = decode(&pb);
    }

    #[test]
    fn arbitrary_raw_objects_never_panic(
        kind in prop::sample::select(vec![("v1", "Pod"), ("apps/v1", "Deployment"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition"), ("v1", "Secret")]),
        raw in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        let _ = decode(&envelope(kind.0, kind.1, &raw));
    }
}

fn golden_cache() -> &'static [Vec<u8>] {
    static CACHE: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| golden().into_iter().map(|(_, pb, _)| pb).collect())
}
