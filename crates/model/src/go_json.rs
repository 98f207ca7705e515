//! JSON text as Go's `encoding/json` writes it for unstructured objects (what kubectl and
//! kube-apiserver put into the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation), so that plumb's annotations compare equal, byte for byte, to theirs.

use serde_json::Value;

/// Serialises like Go's `encoding/json` with HTML escaping: object keys sorted bytewise, no
/// spaces, `<` `>` `&` U+2028 U+2029 as `\u` escapes, whole-valued floats without a
/// fraction.
pub fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => {
                out.push_str(&format!("{f:.0}"))
            }
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(key, out);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_go_json(v, out);
                }
            }
            out.push('}');
        }
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go 1.22 and later (kubectl and kube-apiserver 1.37 are built with Go 1.26)
            // write these two as short escapes, not \u0008 / \u000c.
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn go_json(value: &Value) -> String {
        let mut out = String::new();
        write_go_json(value, &mut out);
        out
    }

    #[test]
    fn sorted_keys_html_escapes_and_whole_floats() {
        let value = json!({"z": "<&>\u{2028}", "a": [1, -2, 1.0, 1.5, null, true],
                           "m": {"b": "line\nbreak\u{1}", "a": "quote\"\\"}});
        assert_eq!(
            go_json(&value),
            r#"{"a":[1,-2,1,1.5,null,true],"m":{"a":"quote\"\\","b":"line\nbreak\u0001"},"z":"\u003c\u0026\u003e\u2028"}"#
        );
    }

    #[test]
    fn backspace_and_form_feed_as_go_1_22_and_later_write_them() {
        // Recorded with Go 1.26's encoding/json: {"a":"x\by\fz\u0001\u003c"}.
        let value = json!({"a": "x\u{8}y\u{c}z\u{1}<"});
        assert_eq!(go_json(&value), r#"{"a":"x\by\fz\u0001\u003c"}"#);
    }

    #[test]
    fn reads_back_as_the_same_value_but_for_whole_floats() {
        let value = json!({"k": ["x", {"y": "é\t"}], "n": 18446744073709551615u64});
        let text = go_json(&value);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, value);
    }
}
