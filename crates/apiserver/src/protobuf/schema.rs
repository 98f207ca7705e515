//! The field table of the built-in kinds' protobuf messages: `schema.json`, generated from
//! k8s.io/api's Go types by tools/protoschema (scripts/gen-protobuf-schema) and compiled in.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

const SCHEMA_JSON: &str = include_str!("schema.json");

/// What a protobuf value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scalar {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Double,
    Float,
    Message,
    Map,
}

/// A value's type: a scalar, a message (by schema name) or a map.
#[derive(Debug, Clone, Deserialize)]
pub struct ValueType {
    #[serde(rename = "t")]
    pub scalar: Scalar,
    #[serde(rename = "m")]
    pub message: Option<String>,
    #[serde(rename = "k")]
    pub key: Option<Box<ValueType>>,
    #[serde(rename = "v")]
    pub value: Option<Box<ValueType>>,
}

/// One field of a message, with the Go JSON options that decide what a JSON client sends.
#[derive(Debug, Clone, Deserialize)]
pub struct Field {
    #[serde(rename = "n")]
    pub number: u32,
    #[serde(rename = "j")]
    pub json_name: String,
    #[serde(flatten)]
    pub value: ValueType,
    #[serde(rename = "r", default)]
    pub repeated: bool,
    #[serde(rename = "p", default)]
    pub pointer: bool,
    #[serde(rename = "oe", default)]
    pub omit_empty: bool,
    #[serde(rename = "oz", default)]
    pub omit_zero: bool,
    #[serde(rename = "i", default)]
    pub inline: bool,
}

/// Types whose JSON form is not their field layout; the decoder renders them by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Special {
    /// metav1.Time: Timestamp{seconds=1}, RFC 3339 to the second, null when zero.
    Time,
    /// metav1.MicroTime: Timestamp{seconds=1, nanos=2}, RFC 3339 to the microsecond.
    Microtime,
    /// resource.Quantity: {string=1}, a JSON string.
    Quantity,
    /// intstr.IntOrString: {type=1, intVal=2, strVal=3}, a JSON number or string.
    Intorstring,
    /// runtime.RawExtension, metav1.FieldsV1, apiextensions JSON: {raw=1}, embedded JSON.
    Rawjson,
    /// apiextensions JSONSchemaPropsOrArray: {schema=1, jSONSchemas=2}.
    Schemaorarray,
    /// apiextensions JSONSchemaPropsOrBool: {allows=1, schema=2}.
    Schemaorbool,
    /// apiextensions JSONSchemaPropsOrStringArray: {schema=1, property=2}.
    Schemaorstringarray,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub special: Option<Special>,
    #[serde(default)]
    pub fields: Vec<Field>,
}

impl Message {
    pub fn field(&self, number: u32) -> Option<usize> {
        self.fields.binary_search_by_key(&number, |f| f.number).ok()
    }
}

#[derive(Debug, Deserialize)]
pub struct Schema {
    /// "apiVersion/kind" (or "*/kind" for any apiVersion) → message name.
    kinds: HashMap<String, String>,
    messages: HashMap<String, Message>,
}

/// The message type JSONSchemaProps* wrap.
pub const JSON_SCHEMA_PROPS: &str =
    "apiextensions-apiserver/pkg/apis/apiextensions/v1.JSONSchemaProps";

impl Schema {
    pub fn message_for(&self, api_version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&format!("{api_version}/{kind}"))
            .or_else(|| self.kinds.get(&format!("*/{kind}")))
            .map(String::as_str)
    }

    pub fn message(&self, name: &str) -> Option<&Message> {
        self.messages.get(name)
    }

    /// Every message, by schema name.
    pub fn messages(&self) -> impl Iterator<Item = (&str, &Message)> {
        self.messages.iter().map(|(name, m)| (name.as_str(), m))
    }

    /// Whether every message a kind can reach is in the table and well-formed (fields
    /// sorted, message/map types complete); run by the tests and on first use.
    fn check(&self) -> Result<(), String> {
        fn check_type(s: &Schema, at: &str, t: &ValueType) -> Result<(), String> {
            match t.scalar {
                Scalar::Message => match &t.message {
                    Some(m) if s.messages.contains_key(m) => Ok(()),
                    other => Err(format!("{at}: unknown message type {other:?}")),
                },
                Scalar::Map => match (&t.key, &t.value) {
                    (Some(k), Some(v)) => {
                        check_type(s, at, k)?;
                        check_type(s, at, v)
                    }
                    _ => Err(format!("{at}: map without key or value type")),
                },
                _ => Ok(()),
            }
        }
        for (name, m) in &self.messages {
            if !m.fields.windows(2).all(|w| w[0].number < w[1].number) {
                return Err(format!("{name}: fields not sorted by number"));
            }
            for f in &m.fields {
                check_type(self, &format!("{name}.{}", f.json_name), &f.value)?;
            }
        }
        for (kind, m) in &self.kinds {
            if !self.messages.contains_key(m) {
                return Err(format!("kind {kind}: unknown message type {m}"));
            }
        }
        if !self.messages.contains_key(JSON_SCHEMA_PROPS) {
            return Err(format!("{JSON_SCHEMA_PROPS} missing"));
        }
        Ok(())
    }
}

static SCHEMA: LazyLock<Result<Schema, String>> = LazyLock::new(|| {
    let schema: Schema = serde_json::from_str(SCHEMA_JSON)
        .map_err(|e| format!("the compiled-in protobuf schema does not parse: {e}"))?;
    schema
        .check()
        .map_err(|e| format!("the compiled-in protobuf schema is inconsistent: {e}"))?;
    Ok(schema)
});

/// The compiled-in schema, or why it cannot be used (a build defect the tests catch).
pub fn schema() -> Result<&'static Schema, &'static str> {
    SCHEMA.as_ref().map_err(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_schema_loads_and_covers_every_served_kind() {
        let s = schema().map_err(str::to_string);
        let Ok(s) = s else {
            panic!("{s:?}");
        };
        for info in crate::registry::builtins() {
            for version in &info.versions {
                let api_version = info.api_version(version);
                assert!(
                    s.message_for(&api_version, &info.kind).is_some(),
                    "{api_version} {} is served but has no protobuf schema",
                    info.kind
                );
            }
        }
        assert!(s.message_for("apps/v1", "DeleteOptions").is_some());
        assert!(s.message_for("autoscaling/v1", "Scale").is_some());
    }
}
