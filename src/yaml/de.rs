//! A serde Deserializer over the node tree. Strict by construction: each `deserialize_*`
//! accepts only the node kinds and scalar spellings that mean that type, and every error is
//! stamped with the path and mark of the innermost node it came from.

use super::scalar::{self, Int, Plain};
use super::tree::{Mark, Node, Value};
use super::{join_key, Error};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use std::fmt;

pub fn from_node<T: DeserializeOwned>(root: &Node) -> Result<T, Error> {
    let top = Path::Root;
    T::deserialize(NodeDe {
        node: root,
        path: &top,
    })
    .map_err(|e| e.into_error())
}

/// The path to a node, as a stack-allocated chain: built into a string only on error.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Key(p, k) => join_key(&p.render(), k),
            Path::Index(p, i) => format!("{}[{i}]", p.render()),
        }
    }
}

/// The error while it travels up: located once, at the innermost node that saw it.
#[derive(Debug)]
pub struct DeError {
    message: String,
    path: Option<String>,
    mark: Option<Mark>,
    /// A missing field: appended to the path of the mapping that lacks it.
    missing: Option<&'static str>,
}

impl DeError {
    fn new(message: String) -> DeError {
        DeError {
            message,
            path: None,
            mark: None,
            missing: None,
        }
    }

    fn locate(mut self, path: &Path<'_>, mark: Mark) -> DeError {
        if self.path.is_none() {
            let mut p = path.render();
            if let Some(f) = self.missing {
                p = join_key(&p, f);
            }
            self.path = Some(p);
            self.mark = Some(mark);
        }
        self
    }

    fn into_error(self) -> Error {
        Error {
            path: self.path.unwrap_or_default(),
            mark: self.mark,
            message: self.message,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

/// serde's own words for what a visitor expects, in ours.
fn expected(exp: &dyn de::Expected) -> String {
    let s = exp.to_string();
    match s.as_str() {
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "a boolean" => "true or false".into(),
        "u8" | "u16" | "u32" | "u64" | "u128" | "i8" | "i16" | "i32" | "i64" | "i128" => {
            format!("an integer ({})", int_range(&s))
        }
        "f32" | "f64" => "a number".into(),
        "option" | "unit" => "a value".into(),
        _ if s.starts_with("struct ") => "a mapping".into(),
        _ => s,
    }
}

fn int_range(ty: &str) -> &'static str {
    match ty {
        "u8" => "0..255",
        "u16" => "0..65535",
        "u32" => "0..4294967295",
        "u64" | "u128" => "0 or more",
        "i8" => "-128..127",
        "i16" => "-32768..32767",
        "i32" => "-2147483648..2147483647",
        _ => "a signed 64-bit value",
    }
}

fn unexpected(u: &de::Unexpected<'_>) -> String {
    match u {
        de::Unexpected::Unsigned(v) => v.to_string(),
        de::Unexpected::Signed(v) => v.to_string(),
        de::Unexpected::Str(s) => format!("{s:?}"),
        de::Unexpected::Bool(b) => b.to_string(),
        de::Unexpected::Float(f) => f.to_string(),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Map => "a mapping".into(),
        de::Unexpected::Unit | de::Unexpected::Option => "null (an empty value)".into(),
        other => other.to_string(),
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> DeError {
        DeError::new(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> DeError {
        DeError::new(format!(
            "expected {}, got {}",
            expected(exp),
            unexpected(&unexp)
        ))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> DeError {
        DeError::new(format!(
            "{} is out of range: expected {}",
            unexpected(&unexp),
            expected(exp)
        ))
    }

    fn invalid_length(len: usize, exp: &dyn de::Expected) -> DeError {
        DeError::new(format!("{len} items; expected {}", expected(exp)))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> DeError {
        DeError::new(format!(
            "{variant:?} is not one of: {}",
            expected.join(", ")
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> DeError {
        DeError::new(format!(
            "unknown field {field:?}; the fields here are {}",
            if expected.is_empty() {
                "none".to_string()
            } else {
                expected.join(", ")
            }
        ))
    }

    fn missing_field(field: &'static str) -> DeError {
        let mut e = DeError::new("missing: this field is required".into());
        e.missing = Some(field);
        e
    }

    fn duplicate_field(field: &'static str) -> DeError {
        DeError::new(format!("{field} is given twice"))
    }
}

/// Describes a node for "got …": kind, and the value of a short scalar.
fn describe(node: &Node) -> String {
    match &node.value {
        Value::Seq(_) => "a list".into(),
        Value::Map(_) => "a mapping".into(),
        Value::Scalar { text, plain: false } => format!("the quoted string {:?}", short(text)),
        Value::Scalar { text, plain: true } => match scalar::resolve(text) {
            Plain::Null => "null (an empty value)".into(),
            Plain::Bool(b) => format!("the boolean {b}"),
            Plain::Int(_) | Plain::IntOverflow => format!("the integer {text}"),
            Plain::Float(_) => format!("the number {text}"),
            Plain::Str => format!("the string {:?}", short(text)),
        },
    }
}

fn short(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(57).collect();
        t.push_str("...");
        t
    }
}

#[derive(Clone, Copy)]
struct NodeDe<'a> {
    node: &'a Node,
    path: &'a Path<'a>,
}

impl NodeDe<'_> {
    fn mismatch(&self, exp: &dyn de::Expected) -> DeError {
        let mut msg = format!("expected {}, got {}", expected(exp), describe(self.node));
        if let Value::Scalar { text, plain: false } = &self.node.value {
            if !matches!(scalar::resolve(text), Plain::Str | Plain::Null) {
                msg.push_str("; quotes make it a string, write it without them");
            }
        }
        DeError::new(msg)
    }

    fn locate<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|e| e.locate(self.path, self.node.mark))
    }

    fn plain(&self) -> Option<Plain> {
        match &self.node.value {
            Value::Scalar { text, plain: true } => Some(scalar::resolve(text)),
            _ => None,
        }
    }

    fn int<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.plain() {
            Some(Plain::Int(Int::Pos(n))) => v.visit_u64(n),
            Some(Plain::Int(Int::Neg(n))) => v.visit_i64(n),
            Some(Plain::IntOverflow) => Err(DeError::new(format!(
                "{} is too large for any field here",
                self.text()
            ))),
            _ => Err(self.mismatch(&v)),
        };
        self.locate(r)
    }

    fn text(&self) -> &str {
        match &self.node.value {
            Value::Scalar { text, .. } => text,
            _ => "",
        }
    }
}

macro_rules! ints {
    ($($m:ident),*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            self.int(v)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Seq(items) => v.visit_seq(SeqDe::new(items, self.path)),
            Value::Map(entries) => v.visit_map(MapDe::new(entries, self.path)),
            Value::Scalar { text, plain: false } => v.visit_str(text),
            Value::Scalar { text, plain: true } => match scalar::resolve(text) {
                Plain::Null => v.visit_unit(),
                Plain::Bool(b) => v.visit_bool(b),
                Plain::Int(Int::Pos(n)) => v.visit_u64(n),
                Plain::Int(Int::Neg(n)) => v.visit_i64(n),
                Plain::IntOverflow | Plain::Str => v.visit_str(text),
                Plain::Float(f) => v.visit_f64(f),
            },
        };
        self.locate(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.plain() {
            Some(Plain::Bool(b)) => v.visit_bool(b),
            _ => Err(self.mismatch(&v)),
        };
        self.locate(r)
    }

    ints!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64
    );

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.plain() {
            Some(Plain::Float(f)) => v.visit_f64(f),
            Some(Plain::Int(Int::Pos(n))) => v.visit_u64(n),
            Some(Plain::Int(Int::Neg(n))) => v.visit_i64(n),
            _ => Err(self.mismatch(&v)),
        };
        self.locate(r)
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    /// Any scalar but null is a string (as in OpenShell's reader: `name: 123` is "123");
    /// a list, a mapping or an empty value is not.
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Scalar { text, plain } if !*plain || scalar::resolve(text) != Plain::Null => {
                v.visit_str(text)
            }
            _ => Err(self.mismatch(&v)),
        };
        self.locate(r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = Err(self.mismatch(&v));
        self.locate(r)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.plain() == Some(Plain::Null) {
            return self.locate(v.visit_none());
        }
        v.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.plain() {
            Some(Plain::Null) => v.visit_unit(),
            _ => Err(self.mismatch(&v)),
        };
        self.locate(r)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Seq(items) => v.visit_seq(SeqDe::new(items, self.path)),
            _ => Err(self.mismatch(&v)),
        };
        self.locate(r)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Map(entries) => v.visit_map(MapDe::new(entries, self.path)),
            _ => Err(self.mismatch(&v)),
        };
        self.locate(r)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        // Unit variants only, spelled as strings.
        let r = match &self.node.value {
            Value::Scalar { text, .. } => v.visit_enum(
                IntoDeserializer::<DeError>::into_deserializer(text.as_str()),
            ),
            _ => Err(self.mismatch(&v)),
        };
        self.locate(r)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

struct SeqDe<'a> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: &'a Path<'a>,
}

impl<'a> SeqDe<'a> {
    fn new(items: &'a [Node], path: &'a Path<'a>) -> SeqDe<'a> {
        SeqDe {
            items: items.iter(),
            index: 0,
            path,
        }
    }
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = Path::Index(self.path, self.index);
        self.index += 1;
        let de = NodeDe { node, path: &path };
        de.locate(seed.deserialize(de)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a (Node, Node)>,
    path: &'a Path<'a>,
}

impl<'a> MapDe<'a> {
    fn new(entries: &'a [(Node, Node)], path: &'a Path<'a>) -> MapDe<'a> {
        MapDe {
            entries: entries.iter(),
            value: None,
            path,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        let key = &entry.0;
        let path = Path::Key(self.path, key.key_text());
        // A key is read as a string whatever it looks like (`80: x` has the key "80").
        let de = KeyDe(key.key_text());
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| e.locate(&path, key.mark))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, value) = self
            .value
            .take()
            .expect("serde asks for a value after its key");
        let path = Path::Key(self.path, key.key_text());
        let de = NodeDe {
            node: value,
            path: &path,
        };
        de.locate(seed.deserialize(de))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A mapping key: always a string.
struct KeyDe<'a>(&'a str);

impl<'de> de::Deserializer<'de> for KeyDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_str(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
