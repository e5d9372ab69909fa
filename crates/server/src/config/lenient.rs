//! Loading the YAML tree before serde sees it: `${VAR}` interpolation of every
//! scalar (not only the fields typed as strings), and a deserializer that lets
//! an interpolated string fill a boolean or numeric field.
//!
//! Why a tree pass: `enabled: ${FEATURE:-true}` or `retries: ${RETRIES:-2}`
//! are strings to the YAML parser; interpolating them field by field in the
//! validator would need every non-string field typed "string or T". Instead
//! every string scalar is interpolated once here (secrets excepted, see
//! [`is_secret_key`]), and [`Lenient`] accepts a string where serde asks for
//! a bool or number, parsing it the way YAML would.

use super::EnvFn;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess};
use serde_yaml::Value;

/// Keys whose values must stay the literal `${VAR}` reference written in the
/// file, so the validator can check that no secret is inline
/// (`api_key`, `api_keys`, `master_key`, `metrics_key`, …).
pub(super) fn is_secret_key(key: &str) -> bool {
    key.ends_with("key") || key.ends_with("keys")
}

/// Interpolate every string scalar of `v` in place (mapping keys are left
/// as written). Unset variables without a default are returned with the
/// dotted path they were found at.
pub(super) fn interpolate_tree(
    v: &mut Value,
    env: EnvFn<'_>,
    path: &str,
    unset: &mut Vec<(String, String)>,
) {
    match v {
        Value::String(s) => {
            if s.contains('$') {
                match super::interp::interpolate(s, env) {
                    Ok(out) => *s = out,
                    Err(var) => unset.push((path.to_owned(), var)),
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, env, &format!("{path}[{i}]"), unset);
            }
        }
        Value::Mapping(map) => {
            for (k, item) in map.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                if is_secret_key(&key) {
                    continue;
                }
                let sub = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                interpolate_tree(item, env, &sub, unset);
            }
        }
        Value::Tagged(t) => interpolate_tree(&mut t.value, env, path, unset),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A YAML value that also deserializes `"true"`/`"false"` into booleans and
/// numeric text into numbers (what an interpolated `${VAR}` yields); every
/// other request is answered exactly as `serde_yaml::Value` would.
pub(super) struct Lenient(pub Value);

type Error = serde_yaml::Error;

fn scalar_text(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.trim()),
        _ => None,
    }
}

macro_rules! numeric {
    ($($method:ident => $visit:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                if let Some(t) = scalar_text(&self.0) {
                    if let Ok(n) = t.parse::<$ty>() {
                        return visitor.$visit(n);
                    }
                }
                self.0.$method(visitor)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Lenient {
    type Error = Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Mapping(m) => visitor.visit_map(LenientMap::new(m)),
            Value::Sequence(s) => visitor.visit_seq(LenientSeq {
                iter: s.into_iter(),
            }),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_bool<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match scalar_text(&self.0) {
            Some("true" | "True" | "TRUE") => visitor.visit_bool(true),
            Some("false" | "False" | "FALSE") => visitor.visit_bool(false),
            _ => self.0.deserialize_bool(visitor),
        }
    }

    numeric! {
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            v => visitor.visit_some(Lenient(v)),
        }
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Sequence(s) => visitor.visit_seq(LenientSeq {
                iter: s.into_iter(),
            }),
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple<V: de::Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Mapping(m) => visitor.visit_map(LenientMap::new(m)),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Mapping(m) => visitor.visit_map(LenientMap::new(m)),
            other => other.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct tuple_struct identifier ignored_any i128 u128
    }
}

struct LenientSeq {
    iter: std::vec::IntoIter<Value>,
}

impl<'de> SeqAccess<'de> for LenientSeq {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.iter.next() {
            Some(v) => seed.deserialize(Lenient(v)).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct LenientMap {
    iter: <serde_yaml::Mapping as IntoIterator>::IntoIter,
    value: Option<Value>,
}

impl LenientMap {
    fn new(m: serde_yaml::Mapping) -> Self {
        LenientMap {
            iter: m.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for LenientMap {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(Lenient(v)),
            None => Err(de::Error::custom("a mapping value was asked for twice")),
        }
    }
}

/// A syntax error on a line that puts `${` inside a YAML flow collection
/// (`[${KEY}]`, `{a: ${B}}`): YAML reads `{` there as the start of a
/// mapping. Returns the fix to suggest.
pub(super) fn flow_reference_trap(line: &str) -> Option<String> {
    let t = line.trim();
    let i = t.find("${")?;
    let before = &t[..i];
    let opens_flow =
        before.contains('[') || before.contains('{') || before.trim_end().ends_with(',');
    if !opens_flow {
        return None;
    }
    let end = t[i..].find('}').map(|e| i + e + 1).unwrap_or(t.len());
    let reference = &t[i..end];
    Some(format!(
        "`{reference}` inside `[…]` or `{{…}}` must be quoted: YAML reads the `{{` as the start of a mapping. \
         Write \"{reference}\" (in double quotes), or use a block list:\n        - {reference}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct T {
        a: Option<bool>,
        n: Option<u32>,
        f: Option<f64>,
        s: Option<String>,
        list: Option<Vec<u16>>,
    }

    fn load(text: &str) -> Result<T, Error> {
        let env = |k: &str| match k {
            "YES" => Some("true".to_owned()),
            "N" => Some("7".to_owned()),
            _ => None,
        };
        let mut v: Value = serde_yaml::from_str(text)?;
        let mut unset = Vec::new();
        interpolate_tree(&mut v, &env, "", &mut unset);
        assert!(unset.is_empty(), "{unset:?}");
        T::deserialize(Lenient(v))
    }

    #[test]
    fn interpolated_scalars_fill_typed_fields() {
        let t = load("a: ${YES}\nn: ${N}\nf: ${F:-0.5}\ns: x${N}\nlist: [\"${N}\", 8]\n").unwrap();
        assert_eq!(
            t,
            T {
                a: Some(true),
                n: Some(7),
                f: Some(0.5),
                s: Some("x7".into()),
                list: Some(vec![7, 8])
            }
        );
        assert!(load("a: ${NOPE:-maybe}\n").is_err(), "not a boolean");
        assert!(load("n: ${NOPE:--1}\n").is_err(), "negative into u32");
        assert!(load("zzz: 1\n").is_err(), "unknown fields still refused");
    }

    #[test]
    fn secrets_stay_references() {
        let mut v: Value =
            serde_yaml::from_str("p:\n  api_key: ${K}\n  api_keys: [\"${K}\"]\n  base: ${U}\n")
                .unwrap();
        let mut unset = Vec::new();
        interpolate_tree(&mut v, &|_| None, "", &mut unset);
        assert_eq!(unset, vec![("p.base".to_owned(), "U".to_owned())]);
        assert_eq!(v["p"]["api_key"].as_str(), Some("${K}"));
    }

    #[test]
    fn flow_trap_is_named() {
        assert!(flow_reference_trap("  api_keys: [${SWITCHYARD_API_KEY}]").is_some());
        assert!(flow_reference_trap("  api_key: ${OPENAI_API_KEY}").is_none());
    }
}
