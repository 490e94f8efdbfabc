//! A deserializer that reads a struct only from a JSON object, at every depth of a body.
//!
//! Serde's derived `Deserialize` for a struct also reads a list of its fields in order
//! (`visit_seq`), and serde_json offers it one: `{"params": {"metadataOptions": [true, true]}}`
//! was read as `includeNames` and `includeEffectiveTimes`, a shape no API documents. Every
//! request body's parse ([`super::body::parse_json`]) goes through [`ObjectsOnly`], which
//! passes everything to the deserializer it wraps and refuses a list where a struct is read,
//! once for every struct rather than in a hand-written `Deserialize` each. Lists read as lists
//! (a `Vec`, a tuple, a JSON value) are untouched.

use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, Error, Expected, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

/// `D`, reading structs from objects only; everything else as `D` reads it.
pub struct ObjectsOnly<D>(pub D);

/// A visitor, seed or access of the deserializer being read, passing the wrapping on to
/// whatever is read through it.
struct Wrap<T>(T);

/// The visitor of a struct: takes an object, refuses a list.
struct StructVisitor<V>(V);

/// Methods that hand their visitor on, wrapped.
macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(Wrap(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectsOnly<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_struct(name, fields, StructVisitor(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StructVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Wrap(map))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<V::Value, A::Error> {
        Err(A::Error::invalid_type(
            Unexpected::Other("array"),
            &AnObject(&self.0),
        ))
    }
}

/// What a struct is read from, in JSON's words, with the struct's own (`struct BatchRow`).
struct AnObject<'a, V>(&'a V);

impl<'de, V: Visitor<'de>> Expected for AnObject<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object (")?;
        self.0.expecting(f)?;
        f.write_str(")")
    }
}

/// Visits that carry no nested value, handed on as they are.
macro_rules! forward_visit {
    ($($method:ident($type:ty))*) => {$(
        fn $method<E: Error>(self, value: $type) -> Result<V::Value, E> {
            self.0.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_f64(f64) visit_char(char) visit_str(&str)
        visit_borrowed_str(&'de str) visit_string(String) visit_bytes(&[u8])
        visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(ObjectsOnly(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(ObjectsOnly(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Wrap(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Wrap(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Wrap(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(ObjectsOnly(deserializer))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Wrap(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Wrap(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Wrap(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<A> {
    type Error = A::Error;
    type Variant = Wrap<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Wrap<A::Variant>), A::Error> {
        let (value, variant) = self.0.variant_seed(Wrap(seed))?;
        Ok((value, Wrap(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Wrap(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, StructVisitor(visitor))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde::Deserialize;
    use serde_json::{json, Value as Json};

    use super::ObjectsOnly;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: bool,
        b: Option<bool>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer<'a> {
        #[serde(borrow)]
        name: Cow<'a, str>,
        inner: Option<Inner>,
        #[serde(default)]
        rows: Vec<Inner>,
        #[serde(default)]
        pair: Option<(u8, u8)>,
        #[serde(default)]
        any: Option<Json>,
    }

    fn read(text: &str) -> Result<Outer<'_>, String> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        Outer::deserialize(ObjectsOnly(deserializer)).map_err(|e| e.to_string())
    }

    #[test]
    fn a_struct_reads_from_an_object_at_any_depth_and_never_from_a_list() {
        let read_whole = read(
            r#"{"name": "n", "inner": {"a": true, "b": null}, "rows": [{"a": false}],
                "pair": [1, 2], "any": [[1], {"k": [2]}]}"#,
        )
        .unwrap();
        assert_eq!(
            read_whole,
            Outer {
                name: Cow::Borrowed("n"),
                inner: Some(Inner { a: true, b: None }),
                rows: vec![Inner { a: false, b: None }],
                pair: Some((1, 2)),
                any: Some(json!([[1], {"k": [2]}])),
            }
        );
        assert!(
            matches!(read_whole.name, Cow::Borrowed(_)),
            "still borrowed"
        );
        // What serde alone reads as structs, refused here.
        for text in [
            r#"{"name": "n", "inner": [true, false]}"#,
            r#"{"name": "n", "rows": [[true, null]]}"#,
            r#"["n", null]"#,
        ] {
            let plain = serde_json::from_str::<Outer>(text);
            assert!(plain.is_ok(), "serde alone reads {text}");
            let refused = read(text).unwrap_err();
            assert!(
                refused.starts_with("invalid type: array, expected an object (struct "),
                "{refused}"
            );
            // Where, as serde_json says it.
            assert!(refused.contains(" at line 1 column "), "{refused}");
        }
        // Other refusals are worded as before.
        let mistyped = read(r#"{"name": "n", "inner": 5}"#).unwrap_err();
        assert!(
            mistyped.starts_with("invalid type: integer `5`, expected struct Inner"),
            "{mistyped}"
        );
    }
}
