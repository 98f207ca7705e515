//! Decoding Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`, what
//! client-go's typed clients and so kubectl's generators send) of every built-in kind into the
//! JSON object a JSON client would have sent for the same Go object. Pure: no I/O.
//!
//! A body is `k8s\0` followed by a `runtime.Unknown` envelope: typeMeta{apiVersion=1, kind=2}=1,
//! raw=2, contentEncoding=3, contentType=4. `raw` is the object's message, read with the field
//! table in `schema.json` (generated from k8s.io/api by tools/protoschema), and rendered the way
//! Go's encoding/json renders the decoded Go struct: zero scalars without `omitempty` are
//! present, nil pointers/slices/maps are null or omitted, non-pointer structs always appear.

pub(crate) mod schema;
mod wire;

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::{Map, Value};

use schema::{Field, JSON_SCHEMA_PROPS, Scalar, Schema, Special, ValueType};
use wire::{Reader, WireValue};

/// The 4-byte prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Deeper nesting than any real object; bounds recursion on hostile input.
const MAX_DEPTH: usize = 100;

/// Unix seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z), what a zero metav1.Time
/// decodes to; it renders as null.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Why a protobuf body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("not a Kubernetes protobuf body (missing the k8s\\0 prefix)")]
    NoMagic,
    #[error("malformed protobuf at {at}: {reason}")]
    Malformed { at: String, reason: String },
    #[error("no protobuf encoding is known for {0}; send it as JSON or YAML")]
    UnsupportedKind(String),
    #[error("{0}")]
    Schema(&'static str),
}

/// A decoding failure while inside the object: the reason and the JSON path to it (innermost
/// segment first while it travels up).
struct Failure {
    path: Vec<String>,
    reason: String,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Self {
        Failure {
            path: Vec::new(),
            reason: reason.into(),
        }
    }
    fn within(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }
    fn into_error(self, root: &str) -> ProtobufError {
        let mut at = root.to_string();
        for segment in self.path.iter().rev() {
            if !segment.starts_with('[') {
                at.push('.');
            }
            at.push_str(segment);
        }
        ProtobufError::Malformed {
            at,
            reason: self.reason,
        }
    }
}

impl From<wire::WireError> for Failure {
    fn from(e: wire::WireError) -> Self {
        Failure::new(e.to_string())
    }
}

/// Decodes a protobuf body into the JSON object Kubernetes would have received as JSON.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let unknown = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let envelope = read_envelope(unknown).map_err(|f| f.into_error("envelope"))?;
    let schema = schema::schema().map_err(ProtobufError::Schema)?;
    if !envelope.content_encoding.is_empty() {
        return Err(ProtobufError::Malformed {
            at: "envelope.contentEncoding".into(),
            reason: format!(
                "content encoding {:?} is not supported",
                envelope.content_encoding
            ),
        });
    }
    let message = schema
        .message_for(&envelope.api_version, &envelope.kind)
        .ok_or_else(|| {
            ProtobufError::UnsupportedKind(format!(
                "apiVersion {:?}, kind {:?}",
                envelope.api_version, envelope.kind
            ))
        })?;
    let decoder = Decoder { schema };
    let body = decoder
        .message(message, envelope.raw, 0)
        .map_err(|f| f.into_error(&envelope.kind))?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String(envelope.api_version));
    object.insert("kind".into(), Value::String(envelope.kind));
    if let Value::Object(fields) = body {
        for (k, v) in fields {
            object.entry(k).or_insert(v);
        }
    }
    Ok(Value::Object(object))
}

struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

fn read_envelope(buf: &[u8]) -> Result<Envelope<'_>, Failure> {
    let mut envelope = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
    };
    let mut r = Reader::new(buf);
    while let Some((n, w)) = r.field()? {
        match (n, w) {
            (1, WireValue::Bytes(type_meta)) => {
                let mut t = Reader::new(type_meta);
                while let Some((tn, tw)) =
                    t.field().map_err(|e| Failure::from(e).within("typeMeta"))?
                {
                    match (tn, tw) {
                        (1, WireValue::Bytes(v)) => envelope.api_version = text(v),
                        (2, WireValue::Bytes(v)) => envelope.kind = text(v),
                        _ => {}
                    }
                }
            }
            (2, WireValue::Bytes(raw)) => envelope.raw = raw,
            (3, WireValue::Bytes(v)) => envelope.content_encoding = text(v),
            // contentType: the object's own encoding, protobuf here by definition.
            (4, WireValue::Bytes(_)) => {}
            (1..=4, other) => {
                return Err(Failure::new(format!(
                    "field {n} is {} where length-delimited belongs",
                    other.wire_name()
                )));
            }
            _ => {}
        }
    }
    Ok(envelope)
}

/// Go decodes proto2 strings without validating UTF-8 and its JSON encoder replaces invalid
/// bytes with U+FFFD; so does this.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn base64(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A JSON number as Go's encoding/json writes a float64: integral values without a fraction.
fn float(f: f64) -> Result<Value, Failure> {
    if !f.is_finite() {
        return Err(Failure::new(format!("{f} has no JSON form")));
    }
    // 2^63: integral values below it are exact in i64.
    if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18 {
        #[allow(clippy::cast_possible_truncation)]
        return Ok(Value::from(f as i64));
    }
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| Failure::new(format!("{f} has no JSON form")))
}

/// The value of one scalar read from the wire, as JSON.
fn scalar(kind: Scalar, w: WireValue<'_>) -> Result<Value, Failure> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
    let v = match (kind, w) {
        (Scalar::String, WireValue::Bytes(b)) => Value::String(text(b)),
        (Scalar::Bytes, WireValue::Bytes(b)) => base64(b),
        (Scalar::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        // Go keeps the low 32 bits (negative int32s arrive sign-extended to 10 bytes).
        (Scalar::Int32, WireValue::Varint(v)) => Value::from(v as u32 as i32),
        (Scalar::Int64, WireValue::Varint(v)) => Value::from(v as i64),
        (Scalar::Uint32, WireValue::Varint(v)) => Value::from(v as u32),
        (Scalar::Uint64, WireValue::Varint(v)) => Value::from(v),
        (Scalar::Double, WireValue::Fixed64(v)) => float(f64::from_bits(v))?,
        // Go writes a float32 with the shortest digits that read back as that float32.
        (Scalar::Float, WireValue::Fixed32(v)) => {
            let shortest = f32::from_bits(v).to_string();
            float(shortest.parse::<f64>().unwrap_or(f64::NAN))?
        }
        (kind, w) => {
            return Err(Failure::new(format!(
                "a {} value where a {kind:?} belongs",
                w.wire_name()
            )));
        }
    };
    Ok(v)
}

/// The Go zero value of a scalar, as JSON.
fn zero(kind: Scalar) -> Value {
    match kind {
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
        Scalar::Bool => Value::Bool(false),
        Scalar::Message | Scalar::Map => Value::Null,
        _ => Value::from(0),
    }
}

/// Go's omitempty: false, 0, "", and empty arrays/maps (structs are never empty).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

/// Packed repeated scalars: one length-delimited field holding the values back to back.
fn packed(kind: Scalar, b: &[u8], out: &mut Vec<Value>) -> Result<(), Failure> {
    let mut r = Reader::new(b);
    match kind {
        Scalar::Double | Scalar::Float => {
            let width = if kind == Scalar::Double { 8 } else { 4 };
            if !b.len().is_multiple_of(width) {
                return Err(Failure::new("packed floats of a ragged length"));
            }
            for chunk in b.chunks_exact(width) {
                let w = if width == 8 {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(chunk);
                    WireValue::Fixed64(u64::from_le_bytes(a))
                } else {
                    let mut a = [0u8; 4];
                    a.copy_from_slice(chunk);
                    WireValue::Fixed32(u32::from_le_bytes(a))
                };
                out.push(scalar(kind, w)?);
            }
        }
        _ => {
            while r.position() < b.len() {
                out.push(scalar(kind, WireValue::Varint(r.varint()?))?);
            }
        }
    }
    Ok(())
}

/// The bytes of a message field; several occurrences merge, which for protobuf is the same
/// as reading their concatenation.
fn message_bytes<'a>(occurrences: &[WireValue<'a>]) -> Result<Cow<'a, [u8]>, Failure> {
    let mut parts = Vec::with_capacity(occurrences.len());
    for w in occurrences {
        match w {
            WireValue::Bytes(b) => parts.push(*b),
            other => {
                return Err(Failure::new(format!(
                    "a {} value where a message belongs",
                    other.wire_name()
                )));
            }
        }
    }
    Ok(match parts.as_slice() {
        [] => Cow::Borrowed(&[]),
        [one] => Cow::Borrowed(*one),
        many => Cow::Owned(many.concat()),
    })
}

struct Decoder<'s> {
    schema: &'s Schema,
}

impl Decoder<'_> {
    /// One message as Go's encoding/json renders the struct it decodes into.
    fn message(&self, name: &str, bytes: &[u8], depth: usize) -> Result<Value, Failure> {
        if depth > MAX_DEPTH {
            return Err(Failure::new(format!(
                "nested deeper than {MAX_DEPTH} messages"
            )));
        }
        let message = self
            .schema
            .message(name)
            .ok_or_else(|| Failure::new(format!("no schema for message {name}")))?;
        if let Some(special) = message.special {
            return self.special(special, bytes, depth);
        }
        let mut occurrences: Vec<Vec<WireValue<'_>>> = vec![Vec::new(); message.fields.len()];
        let mut r = Reader::new(bytes);
        loop {
            let next = r.field().map_err(|e| {
                // Name the field whose bytes break, when it is one of ours.
                let within = e.field.and_then(|n| message.field(n));
                let failure = Failure::from(e);
                match within {
                    Some(i) => failure.within(message.fields[i].json_name.clone()),
                    None => failure,
                }
            })?;
            let Some((n, w)) = next else { break };
            // Unknown fields are skipped, as Go's generated unmarshallers do.
            if let Some(i) = message.field(n) {
                occurrences[i].push(w);
            }
        }
        let mut out = Map::new();
        let mut inlined = Map::new();
        for (field, occ) in message.fields.iter().zip(&occurrences) {
            let value = self
                .field(field, occ, depth)
                .map_err(|f| f.within(field.json_name.clone()))?;
            match value {
                Rendered::Omit => {}
                Rendered::Value(v) => {
                    out.insert(field.json_name.clone(), v);
                }
                Rendered::Inline(Value::Object(fields)) => inlined.extend(fields),
                Rendered::Inline(_) => {}
            }
        }
        // Promoted fields of embedded structs lose to the outer struct's own fields.
        for (k, v) in inlined {
            out.entry(k).or_insert(v);
        }
        Ok(Value::Object(out))
    }

    fn field(&self, f: &Field, occ: &[WireValue<'_>], depth: usize) -> Result<Rendered, Failure> {
        let omit_nil = || {
            if f.omit_empty || f.omit_zero {
                Rendered::Omit
            } else {
                Rendered::Value(Value::Null)
            }
        };
        if f.repeated {
            let mut items = Vec::new();
            for w in occ {
                let at = items.len();
                match (f.value.scalar, w) {
                    (Scalar::Message, _) => {
                        let bytes = message_bytes(std::slice::from_ref(w))
                            .map_err(|e| e.within(format!("[{at}]")))?;
                        items.push(
                            self.message(self.message_name(&f.value)?, &bytes, depth + 1)
                                .map_err(|e| e.within(format!("[{at}]")))?,
                        );
                    }
                    (Scalar::String | Scalar::Bytes, w) => items.push(scalar(f.value.scalar, *w)?),
                    (kind, WireValue::Bytes(b)) => packed(kind, b, &mut items)?,
                    (kind, w) => items.push(scalar(kind, *w)?),
                }
            }
            return Ok(if items.is_empty() {
                omit_nil()
            } else {
                Rendered::Value(Value::Array(items))
            });
        }
        match f.value.scalar {
            Scalar::Map => {
                let mut entries = Map::new();
                for w in occ {
                    let WireValue::Bytes(entry) = w else {
                        return Err(Failure::new(format!(
                            "a {} value where a map entry belongs",
                            w.wire_name()
                        )));
                    };
                    let (k, v) = self.map_entry(&f.value, entry, depth)?;
                    entries.insert(k, v);
                }
                Ok(if entries.is_empty() {
                    omit_nil()
                } else {
                    Rendered::Value(Value::Object(entries))
                })
            }
            Scalar::Message => {
                if occ.is_empty() && f.pointer {
                    return Ok(if f.inline { Rendered::Omit } else { omit_nil() });
                }
                let name = self.message_name(&f.value)?;
                let bytes = message_bytes(occ)?;
                let v = self.message(name, &bytes, depth + 1)?;
                if f.inline {
                    return Ok(Rendered::Inline(v));
                }
                // omitzero: a non-pointer struct equal to its zero value (metav1.Time's IsZero
                // agrees: a zero time renders as null either way).
                if f.omit_zero && !f.pointer && v == self.message(name, &[], depth + 1)? {
                    return Ok(Rendered::Omit);
                }
                Ok(Rendered::Value(v))
            }
            Scalar::Bytes => match occ.last() {
                // A nil []byte.
                None => Ok(omit_nil()),
                Some(w) => {
                    let v = scalar(Scalar::Bytes, *w)?;
                    Ok(if (f.omit_empty || f.omit_zero) && is_empty(&v) {
                        Rendered::Omit
                    } else {
                        Rendered::Value(v)
                    })
                }
            },
            kind => {
                // The last occurrence wins, as in protobuf; every one must be well-formed.
                let mut value = None;
                for w in occ {
                    value = Some(scalar(kind, *w)?);
                }
                match value {
                    None if f.pointer => Ok(omit_nil()),
                    v => {
                        let v = v.unwrap_or_else(|| zero(kind));
                        Ok(
                            if !f.pointer && (f.omit_empty || f.omit_zero) && is_empty(&v) {
                                Rendered::Omit
                            } else {
                                Rendered::Value(v)
                            },
                        )
                    }
                }
            }
        }
    }

    fn message_name<'t>(&self, t: &'t ValueType) -> Result<&'t str, Failure> {
        t.message
            .as_deref()
            .ok_or_else(|| Failure::new("schema names no message type"))
    }

    /// A map entry: key = 1, value = 2; absent parts are Go zero values.
    fn map_entry(
        &self,
        t: &ValueType,
        entry: &[u8],
        depth: usize,
    ) -> Result<(String, Value), Failure> {
        let (Some(key_type), Some(value_type)) = (&t.key, &t.value) else {
            return Err(Failure::new("schema map without key or value type"));
        };
        let mut key = None;
        let mut value = Vec::new();
        let mut r = Reader::new(entry);
        while let Some((n, w)) = r.field()? {
            match n {
                1 => key = Some(w),
                2 => value.push(w),
                _ => {}
            }
        }
        let key = match key {
            None => String::new(),
            Some(w) => match scalar(key_type.scalar, w)? {
                Value::String(s) => s,
                other => other.to_string(),
            },
        };
        let v = match value_type.scalar {
            Scalar::Message => {
                let bytes = message_bytes(&value)?;
                self.message(self.message_name(value_type)?, &bytes, depth + 1)
            }
            Scalar::Map => Err(Failure::new("maps of maps are not in Kubernetes")),
            kind => match value.last() {
                Some(w) => scalar(kind, *w),
                None => Ok(zero(kind)),
            },
        }
        .map_err(|f| f.within(format!("[{key:?}]")))?;
        Ok((key, v))
    }

    fn special(&self, special: Special, bytes: &[u8], depth: usize) -> Result<Value, Failure> {
        let mut fields: [Vec<WireValue<'_>>; 4] = Default::default();
        let mut r = Reader::new(bytes);
        while let Some((n, w)) = r.field()? {
            if let Some(slot) = usize::try_from(n).ok().and_then(|n| fields.get_mut(n)) {
                slot.push(w);
            }
        }
        let last_int = |n: usize, kind: Scalar| -> Result<i64, Failure> {
            match fields[n].last() {
                None => Ok(0),
                Some(w) => scalar(kind, *w)?
                    .as_i64()
                    .ok_or_else(|| Failure::new("integer out of range")),
            }
        };
        let last_text = |n: usize| -> Result<Option<String>, Failure> {
            fields[n]
                .last()
                .map(|w| match scalar(Scalar::String, *w)? {
                    Value::String(s) => Ok(s),
                    _ => Err(Failure::new("expected a string")),
                })
                .transpose()
        };
        let schema_props = |n: usize| -> Result<Option<Value>, Failure> {
            if fields[n].is_empty() {
                return Ok(None);
            }
            let bytes = message_bytes(&fields[n])?;
            self.message(JSON_SCHEMA_PROPS, &bytes, depth + 1).map(Some)
        };
        let schema_list = |n: usize| -> Result<Vec<Value>, Failure> {
            fields[n]
                .iter()
                .map(|w| {
                    let bytes = message_bytes(std::slice::from_ref(w))?;
                    self.message(JSON_SCHEMA_PROPS, &bytes, depth + 1)
                })
                .collect()
        };
        match special {
            Special::Time | Special::Microtime => {
                if bytes.is_empty() {
                    return Ok(Value::Null);
                }
                let seconds = last_int(1, Scalar::Int64)?;
                // Time keeps whole seconds only; MicroTime truncates to microseconds.
                let nanos = if special == Special::Time {
                    0
                } else {
                    let n = last_int(2, Scalar::Int32)?;
                    n - n % 1000
                };
                timestamp(seconds, nanos, special == Special::Microtime)
            }
            Special::Quantity => Ok(Value::String(
                last_text(1)?.unwrap_or_else(|| "0".to_string()),
            )),
            Special::Intorstring => match last_int(1, Scalar::Int64)? {
                0 => Ok(Value::from(last_int(2, Scalar::Int32)?)),
                1 => Ok(Value::String(last_text(3)?.unwrap_or_default())),
                other => Err(Failure::new(format!("IntOrString of unknown type {other}"))),
            },
            Special::Rawjson => match fields[1].last() {
                Some(WireValue::Bytes(raw)) if !raw.is_empty() => serde_json::from_slice(raw)
                    .map_err(|e| Failure::new(format!("embedded JSON does not parse: {e}"))),
                Some(WireValue::Bytes(_)) | None => Ok(Value::Null),
                Some(w) => Err(Failure::new(format!(
                    "a {} value where raw bytes belong",
                    w.wire_name()
                ))),
            },
            Special::Schemaorarray => {
                let list = schema_list(2)?;
                if !list.is_empty() {
                    return Ok(Value::Array(list));
                }
                Ok(schema_props(1)?.unwrap_or(Value::Null))
            }
            Special::Schemaorbool => match schema_props(2)? {
                Some(schema) => Ok(schema),
                None => match fields[1].last() {
                    Some(w) => scalar(Scalar::Bool, *w),
                    None => Ok(Value::Bool(false)),
                },
            },
            Special::Schemaorstringarray => {
                let mut strings = Vec::new();
                for w in &fields[2] {
                    strings.push(scalar(Scalar::String, *w)?);
                }
                if !strings.is_empty() {
                    return Ok(Value::Array(strings));
                }
                Ok(schema_props(1)?.unwrap_or(Value::Null))
            }
        }
    }
}

enum Rendered {
    Omit,
    Value(Value),
    /// An embedded struct whose fields Go's encoder promotes into the parent object.
    Inline(Value),
}

/// RFC 3339 in UTC as metav1.Time (seconds) and metav1.MicroTime (microseconds) write it;
/// Go's zero time is null.
fn timestamp(seconds: i64, nanos: i64, micro: bool) -> Result<Value, Failure> {
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    if total == i128::from(GO_ZERO_TIME_UNIX) * 1_000_000_000 {
        return Ok(Value::Null);
    }
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(total)
        .map_err(|_| Failure::new(format!("timestamp {seconds}s is out of range")))?;
    if !(0..=9999).contains(&t.year()) {
        return Err(Failure::new(format!(
            "timestamp {seconds}s is outside years 0-9999"
        )));
    }
    let date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Ok(Value::String(if micro {
        format!("{date}.{:06}Z", t.microsecond())
    } else {
        format!("{date}Z")
    }))
}

#[cfg(test)]
mod tests;
