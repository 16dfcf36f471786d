//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), transcoded to
//! JSON. kubectl 1.33's typed commands (`create namespace`, `create configmap`, `create
//! secret`, `create serviceaccount`, `create role`, `create rolebinding`) send their bodies
//! this way; everything else, and every response, is JSON.
//!
//! The envelope is the magic `k8s\0` followed by a `runtime.Unknown` message (type meta plus
//! the object's own bytes). Only the messages of the kinds above are described; fields not
//! listed are skipped. As with `omitempty` in JSON, zero values are dropped.

use base64::Engine;
use chrono::DateTime;
use serde_json::{Map, Value, json};

use crate::resources::ResourceKind;

/// The Content-Type of protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Clone, Copy)]
enum Ty {
    Str,
    /// Raw bytes, base64 in JSON.
    Bytes,
    Int,
    Bool,
    /// `meta.v1.Time` (seconds, nanos), RFC 3339 in JSON.
    Time,
    Msg(&'static [Field]),
    /// `map<string, string>` (repeated key/value entries).
    MapStr,
    /// `map<string, bytes>`, values base64 in JSON.
    MapBytes,
}

/// One field: tag, JSON name, type, repeated.
struct Field(u32, &'static str, Ty, bool);

use Ty::{Bool, Bytes, Int, MapBytes, MapStr, Msg, Str, Time};

const OWNER_REFERENCE: &[Field] = &[
    Field(1, "kind", Str, false),
    Field(3, "name", Str, false),
    Field(4, "uid", Str, false),
    Field(5, "apiVersion", Str, false),
    Field(6, "controller", Bool, false),
    Field(7, "blockOwnerDeletion", Bool, false),
];

const OBJECT_META: &[Field] = &[
    Field(1, "name", Str, false),
    Field(2, "generateName", Str, false),
    Field(3, "namespace", Str, false),
    Field(5, "uid", Str, false),
    Field(6, "resourceVersion", Str, false),
    Field(7, "generation", Int, false),
    Field(8, "creationTimestamp", Time, false),
    Field(11, "labels", MapStr, false),
    Field(12, "annotations", MapStr, false),
    Field(13, "ownerReferences", Msg(OWNER_REFERENCE), true),
    Field(14, "finalizers", Str, true),
];

const NAMESPACE: &[Field] = &[
    Field(1, "metadata", Msg(OBJECT_META), false),
    Field(2, "spec", Msg(&[Field(1, "finalizers", Str, true)]), false),
];

const CONFIG_MAP: &[Field] = &[
    Field(1, "metadata", Msg(OBJECT_META), false),
    Field(2, "data", MapStr, false),
    Field(3, "binaryData", MapBytes, false),
    Field(4, "immutable", Bool, false),
];

const SECRET: &[Field] = &[
    Field(1, "metadata", Msg(OBJECT_META), false),
    Field(2, "data", MapBytes, false),
    Field(3, "type", Str, false),
    Field(4, "stringData", MapStr, false),
    Field(5, "immutable", Bool, false),
];

const OBJECT_REFERENCE: &[Field] = &[
    Field(1, "kind", Str, false),
    Field(2, "namespace", Str, false),
    Field(3, "name", Str, false),
    Field(4, "uid", Str, false),
    Field(5, "apiVersion", Str, false),
];

const SERVICE_ACCOUNT: &[Field] = &[
    Field(1, "metadata", Msg(OBJECT_META), false),
    Field(2, "secrets", Msg(OBJECT_REFERENCE), true),
    Field(
        3,
        "imagePullSecrets",
        Msg(&[Field(1, "name", Str, false)]),
        true,
    ),
    Field(4, "automountServiceAccountToken", Bool, false),
];

const POLICY_RULE: &[Field] = &[
    Field(1, "verbs", Str, true),
    Field(2, "apiGroups", Str, true),
    Field(3, "resources", Str, true),
    Field(4, "resourceNames", Str, true),
    Field(5, "nonResourceURLs", Str, true),
];

const ROLE: &[Field] = &[
    Field(1, "metadata", Msg(OBJECT_META), false),
    Field(2, "rules", Msg(POLICY_RULE), true),
];

const SUBJECT: &[Field] = &[
    Field(1, "kind", Str, false),
    Field(2, "apiGroup", Str, false),
    Field(3, "name", Str, false),
    Field(4, "namespace", Str, false),
];

const ROLE_REF: &[Field] = &[
    Field(1, "apiGroup", Str, false),
    Field(2, "kind", Str, false),
    Field(3, "name", Str, false),
];

const ROLE_BINDING: &[Field] = &[
    Field(1, "metadata", Msg(OBJECT_META), false),
    Field(2, "subjects", Msg(SUBJECT), true),
    Field(3, "roleRef", Msg(ROLE_REF), false),
];

fn message_for(kind: &ResourceKind) -> Option<&'static [Field]> {
    Some(match (kind.group, kind.kind) {
        ("", "Namespace") => NAMESPACE,
        ("", "ConfigMap") => CONFIG_MAP,
        ("", "Secret") => SECRET,
        ("", "ServiceAccount") => SERVICE_ACCOUNT,
        ("rbac.authorization.k8s.io", "Role") => ROLE,
        ("rbac.authorization.k8s.io", "RoleBinding") => ROLE_BINDING,
        _ => return None,
    })
}

/// Decodes a protobuf body of `kind` into its JSON form, or says why it cannot.
pub fn decode(kind: &ResourceKind, body: &[u8]) -> Result<Value, String> {
    let schema = message_for(kind).ok_or_else(|| {
        format!(
            "protobuf bodies of {} are not supported by this fake",
            kind.kind
        )
    })?;
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or("missing the k8s protobuf magic prefix")?;
    let (mut type_meta, mut raw) = (Map::new(), None);
    let mut reader = Reader {
        buf: envelope,
        pos: 0,
    };
    while let Some((tag, wire)) = reader.field()? {
        match (tag, wire) {
            (1, Wire::Bytes(bytes)) => {
                type_meta = message(
                    &[
                        Field(1, "apiVersion", Str, false),
                        Field(2, "kind", Str, false),
                    ],
                    bytes,
                )?
            }
            (2, Wire::Bytes(bytes)) => raw = Some(bytes),
            _ => {}
        }
    }
    let mut object = message(schema, raw.ok_or("the envelope carries no object")?)?;
    object.extend(type_meta);
    Ok(Value::Object(object))
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or("truncated field")?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next (tag, value), or None at the end.
    fn field(&mut self) -> Result<Option<(u32, Wire<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| "tag out of range")?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => self.take(8).map(|_| Wire::Fixed)?,
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length out of range")?;
                Wire::Bytes(self.take(len)?)
            }
            5 => self.take(4).map(|_| Wire::Fixed)?,
            other => return Err(format!("unsupported wire type {other}")),
        };
        Ok(Some((tag, wire)))
    }
}

fn message(schema: &[Field], bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut reader = Reader { buf: bytes, pos: 0 };
    while let Some((tag, wire)) = reader.field()? {
        let Some(Field(_, name, ty, repeated)) = schema.iter().find(|f| f.0 == tag) else {
            continue;
        };
        let slot = out.entry(name.to_string()).or_insert(Value::Null);
        match ty {
            MapStr | MapBytes => {
                let (key, value) = map_entry(*ty, &wire)?;
                if !slot.is_object() {
                    *slot = json!({});
                }
                slot[key] = value;
            }
            _ if *repeated => {
                if !slot.is_array() {
                    *slot = json!([]);
                }
                slot.as_array_mut()
                    .expect("just made an array")
                    .push(scalar(*ty, &wire)?);
            }
            _ => *slot = scalar(*ty, &wire)?,
        }
    }
    out.retain(|_, v| !is_zero(v));
    Ok(out)
}

fn map_entry(ty: Ty, wire: &Wire) -> Result<(String, Value), String> {
    let Wire::Bytes(bytes) = wire else {
        return Err("a map entry must be a message".into());
    };
    let value_ty = if matches!(ty, MapBytes) { Bytes } else { Str };
    let (mut key, mut value) = (String::new(), scalar(value_ty, &Wire::Bytes(&[]))?);
    let mut reader = Reader { buf: bytes, pos: 0 };
    while let Some((tag, wire)) = reader.field()? {
        match tag {
            1 => key = scalar(Str, &wire)?.as_str().unwrap_or_default().to_string(),
            2 => value = scalar(value_ty, &wire)?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn scalar(ty: Ty, wire: &Wire) -> Result<Value, String> {
    match (ty, wire) {
        (Str, Wire::Bytes(b)) => Ok(json!(
            String::from_utf8(b.to_vec()).map_err(|e| e.to_string())?
        )),
        (Bytes, Wire::Bytes(b)) => Ok(json!(base64::engine::general_purpose::STANDARD.encode(b))),
        // Two's complement: negative int64 values arrive as huge varints.
        (Int, Wire::Varint(v)) => Ok(json!(*v as i64)),
        (Bool, Wire::Varint(v)) => Ok(json!(*v != 0)),
        (Time, Wire::Bytes(b)) => Ok(time(b)?),
        (Msg(schema), Wire::Bytes(b)) => Ok(Value::Object(message(schema, b)?)),
        _ => Err("a field has an unexpected wire type".into()),
    }
}

fn time(bytes: &[u8]) -> Result<Value, String> {
    let (mut seconds, mut nanos) = (0i64, 0u32);
    let mut reader = Reader { buf: bytes, pos: 0 };
    while let Some((tag, wire)) = reader.field()? {
        match (tag, wire) {
            (1, Wire::Varint(v)) => seconds = v as i64,
            (2, Wire::Varint(v)) => nanos = v as u32,
            _ => {}
        }
    }
    if seconds == 0 && nanos == 0 {
        return Ok(Value::Null);
    }
    let at = DateTime::from_timestamp(seconds, nanos).ok_or("time out of range")?;
    Ok(json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(tag << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = [field(1, b"cm"), field(2, b""), field(8, b"")].concat();
        let entry = [field(1, b"a"), field(2, b"b")].concat();
        let object = [field(1, &meta), field(2, &entry)].concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &object)].concat();
        let (kind, _) = lookup("", "v1", "configmaps").unwrap();
        assert_eq!(
            decode(kind, &body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}})
        );
        let (pods, _) = lookup("", "v1", "pods").unwrap();
        assert!(decode(pods, &body).is_err());
        assert!(decode(kind, b"{}").is_err());
    }
}
