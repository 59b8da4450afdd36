//! Any self-describing value (MessagePack, JSON, CBOR) as JSON, including
//! what JSON has no word for: maps with non-string keys (their keys are
//! printed as JSON text) and byte strings (as `0x…` hex).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A decoded value, as JSON.
#[derive(Debug, PartialEq)]
pub struct AnyValue(pub Value);

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyVisitor).map(AnyValue)
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any self-describing value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // NaN and infinities have no JSON number: say them in words.
        Ok(Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        let mut hex = String::with_capacity(2 + v.len() * 2);
        hex.push_str("0x");
        for b in v {
            hex.push_str(&format!("{b:02x}"));
        }
        Ok(Value::String(hex))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(AnyValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some((AnyValue(key), AnyValue(value))) = map.next_entry()? {
            let key = match key {
                Value::String(s) => s,
                other => other.to_string(),
            };
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        // Formats that call this (none of the built-in self-describing
        // ones do) get the variant's name; the content is not reachable
        // without knowing the variant's shape.
        let (AnyValue(variant), _) = data.variant::<AnyValue>()?;
        Ok(variant)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn messagepack_with_integer_keys_and_bytes_becomes_json() {
        let mut map = BTreeMap::new();
        map.insert(7u64, serde_bytes_like(&[0xde, 0xad]));
        let bytes = rmp_serde_encode(&map);
        let value: AnyValue = cache_core::codec::Codec::default()
            .decode(&bytes)
            .expect("decodes");
        assert_eq!(value.0, serde_json::json!({"7": "0xdead"}));
    }

    /// msgpack `bin` through the cache's own codec (serde's `Vec<u8>` would
    /// be an array of numbers).
    fn serde_bytes_like(b: &[u8]) -> Bin {
        Bin(b.to_vec())
    }

    struct Bin(Vec<u8>);

    impl serde::Serialize for Bin {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    fn rmp_serde_encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
        cache_core::codec::Codec::default()
            .encode(value)
            .expect("encodes")
    }
}
