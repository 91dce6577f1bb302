//! Script replies read by name. Each queue script returns a flat `{ name1, value1, name2, … }`
//! array (prelude.lua's `flatten`), so adding or reordering a field in a script can never shift
//! another field's meaning the way positional replies do.

use std::collections::HashMap;

use redis::Value;

use super::{int, list, text, QueueError};

/// The named fields of one script reply.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    map: HashMap<String, &'a Value>,
}

impl<'a> Fields<'a> {
    /// Reads a flat name/value array; anything else is a [`QueueError::BadReply`].
    pub fn parse(v: &'a Value) -> Result<Self, QueueError> {
        let items = list(Some(v)).ok_or(QueueError::BadReply)?;
        if items.len() % 2 != 0 {
            return Err(QueueError::BadReply);
        }
        let mut map = HashMap::with_capacity(items.len() / 2);
        for pair in items.chunks_exact(2) {
            let name = text(pair.first()).ok_or(QueueError::BadReply)?;
            if let Some(value) = pair.get(1) {
                map.insert(name, value);
            }
        }
        Ok(Self { map })
    }

    /// The raw value of a field.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).copied()
    }

    /// A numeric field; `None` when absent, not a number, or not finite.
    pub fn num(&self, name: &str) -> Option<f64> {
        int(self.get(name)).filter(|v| v.is_finite())
    }

    /// A text field.
    pub fn text(&self, name: &str) -> Option<String> {
        text(self.get(name))
    }

    /// An array field.
    pub fn list(&self, name: &str) -> Option<&'a [Value]> {
        list(self.get(name))
    }

    /// A required numeric field: its absence means the reply is not what the script returns.
    pub fn need(&self, name: &str) -> Result<f64, QueueError> {
        self.num(name).ok_or(QueueError::BadReply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn fields_by_name_whatever_the_order() {
        let v =
            Value::Array(vec![bulk("now"), Value::Int(5), bulk("oldest"), bulk("inf"), bulk("n"), bulk("7")]);
        let f = Fields::parse(&v).expect("flat pairs");
        assert_eq!(f.need("now"), Ok(5.0));
        assert_eq!(f.num("n"), Some(7.0));
        assert_eq!(f.num("oldest"), None, "inf is not a usable number");
        assert_eq!(f.need("missing"), Err(QueueError::BadReply));
    }

    #[test]
    fn odd_or_non_array_replies_are_bad() {
        assert!(Fields::parse(&Value::Int(3)).is_err());
        assert!(Fields::parse(&Value::Array(vec![bulk("a")])).is_err());
    }
}
