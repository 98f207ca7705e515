//! Decoding the Kubernetes protobuf encoding of the few kinds kubectl's generators send
//! that way (`kubectl create namespace|configmap|secret|serviceaccount`). Everything else
//! travels as JSON. Pure.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The 4-byte prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("not a Kubernetes protobuf body (missing the k8s\\0 prefix)")]
    NoMagic,
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    #[error(
        "protobuf bodies are accepted for Namespace, ConfigMap, Secret and ServiceAccount only (got {0}); send JSON or YAML instead"
    )]
    UnsupportedKind(String),
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or(ProtobufError::Malformed("truncated varint"))?;
            self.buf = rest;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(ProtobufError::Malformed("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        if n > self.buf.len() {
            return Err(ProtobufError::Malformed("truncated field"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next (field number, value), or None at the end.
    fn next(&mut self) -> Result<Option<(u64, Wire<'a>)>, ProtobufError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let n = usize::try_from(self.varint()?)
                    .map_err(|_| ProtobufError::Malformed("length overflow"))?;
                Wire::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            _ => return Err(ProtobufError::Malformed("unsupported wire type")),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ProtobufError> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Ok(out)
}

fn string(b: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtobufError::Malformed("string is not UTF-8"))
}

/// A `map<string, string|bytes>` entry.
fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(k)) => key = string(k)?,
            (2, Wire::Bytes(v)) if bytes_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(v))
            }
            (2, Wire::Bytes(v)) => value = json!(string(v)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn insert_entry(
    obj: &mut Map<String, Value>,
    field: &str,
    b: &[u8],
    bytes_value: bool,
) -> Result<(), ProtobufError> {
    let (k, v) = map_entry(b, bytes_value)?;
    if let Some(m) = obj
        .entry(field)
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        m.insert(k, v);
    }
    Ok(())
}

fn object_meta(b: &[u8]) -> Result<Value, ProtobufError> {
    let mut meta = Map::new();
    for (n, w) in fields(b)? {
        let Wire::Bytes(v) = w else {
            if let (7, Wire::Varint(g)) = (n, w) {
                meta.insert("generation".into(), json!(g));
            }
            continue;
        };
        match n {
            1 => {
                meta.insert("name".into(), json!(string(v)?));
            }
            2 => {
                meta.insert("generateName".into(), json!(string(v)?));
            }
            3 => {
                meta.insert("namespace".into(), json!(string(v)?));
            }
            6 => {
                meta.insert("resourceVersion".into(), json!(string(v)?));
            }
            11 => insert_entry(&mut meta, "labels", v, false)?,
            12 => insert_entry(&mut meta, "annotations", v, false)?,
            14 => {
                let list = meta.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(json!(string(v)?));
                }
            }
            // uid, timestamps, ownerReferences, managedFields: set by the server or unused
            // by the generators that send protobuf.
            _ => {}
        }
    }
    Ok(Value::Object(meta))
}

/// Decodes a protobuf body into the JSON object Kubernetes would have received.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let unknown = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, w) in fields(unknown)? {
        match (n, w) {
            (1, Wire::Bytes(type_meta)) => {
                for (tn, tw) in fields(type_meta)? {
                    match (tn, tw) {
                        (1, Wire::Bytes(v)) => api_version = string(v)?,
                        (2, Wire::Bytes(v)) => kind = string(v)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let supported = matches!(
        (api_version.as_str(), kind.as_str()),
        (
            "v1",
            "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount"
        )
    );
    if !supported {
        return Err(ProtobufError::UnsupportedKind(format!(
            "{api_version} {kind}"
        )));
    }
    for (n, w) in fields(raw)? {
        match (kind.as_str(), n, w) {
            (_, 1, Wire::Bytes(m)) => {
                obj.insert("metadata".into(), object_meta(m)?);
            }
            ("ConfigMap", 2, Wire::Bytes(e)) => insert_entry(&mut obj, "data", e, false)?,
            ("ConfigMap", 3, Wire::Bytes(e)) => insert_entry(&mut obj, "binaryData", e, true)?,
            ("ConfigMap", 4, Wire::Varint(b)) => {
                obj.insert("immutable".into(), json!(b != 0));
            }
            ("Secret", 2, Wire::Bytes(e)) => insert_entry(&mut obj, "data", e, true)?,
            ("Secret", 3, Wire::Bytes(t)) => {
                obj.insert("type".into(), json!(string(t)?));
            }
            ("Secret", 4, Wire::Bytes(e)) => insert_entry(&mut obj, "stringData", e, false)?,
            ("Secret", 5, Wire::Varint(b)) => {
                obj.insert("immutable".into(), json!(b != 0));
            }
            ("ServiceAccount", 4, Wire::Varint(b)) => {
                obj.insert("automountServiceAccountToken".into(), json!(b != 0));
            }
            _ => {}
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, n: u8, b: &[u8]) {
        out.push((n << 3) | 2);
        out.push(u8::try_from(b.len()).unwrap());
        out.extend_from_slice(b);
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        field(&mut e, 1, k.as_bytes());
        field(&mut e, 2, v);
        e
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        field(&mut tm, 1, api_version.as_bytes());
        field(&mut tm, 2, kind.as_bytes());
        let mut u = MAGIC.to_vec();
        field(&mut u, 1, &tm);
        field(&mut u, 2, raw);
        field(&mut u, 4, b"application/vnd.kubernetes.protobuf");
        u
    }

    #[test]
    fn decodes_a_secret_like_kubectl_create_secret_sends() {
        let mut meta = Vec::new();
        field(&mut meta, 1, b"creds");
        field(&mut meta, 3, b"shop");
        field(&mut meta, 11, &entry("app", b"web"));
        let mut raw = Vec::new();
        field(&mut raw, 1, &meta);
        field(&mut raw, 2, &entry("password", b"hunter2"));
        field(&mut raw, 3, b"Opaque");
        let v = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "shop", "labels": {"app": "web"}},
                   "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"})
        );
    }

    #[test]
    fn decodes_a_config_map() {
        let mut meta = Vec::new();
        field(&mut meta, 1, b"settings");
        let mut raw = Vec::new();
        field(&mut raw, 1, &meta);
        field(&mut raw, 2, &entry("a", b"1"));
        field(&mut raw, 2, &entry("b", b"2"));
        let v = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(v["data"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(decode(b"{}"), Err(ProtobufError::NoMagic));
        assert!(matches!(
            decode(&envelope("apps/v1", "Deployment", &[])),
            Err(ProtobufError::UnsupportedKind(_))
        ));
        let mut truncated = envelope("v1", "ConfigMap", &[0x0a, 0x05, 0x01]);
        truncated.truncate(truncated.len() - 1);
        assert!(decode(&truncated).is_err());
        assert!(matches!(
            decode(b"k8s\0\x0a\xff"),
            Err(ProtobufError::Malformed(_))
        ));
    }
}
