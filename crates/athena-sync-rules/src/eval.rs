//! Evaluates compiled expressions on one row. Semantics follow SQLite, because the values end up in the clients'
//! SQLite databases and the rules' authors reason about them that way (booleans are 0/1, JSON text is text).

use serde_json::{Map, Number, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CastType {
    Text,
    Integer,
    Real,
    Numeric,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonStep {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueExpr {
    Column(String),
    Literal(Value),
    Cast(Box<ValueExpr>, CastType),
    /// `base -> path` (`text == false`, JSON text) or `base ->> path` (`text == true`, an SQL scalar).
    Json {
        base: Box<ValueExpr>,
        path: Vec<JsonStep>,
        text: bool,
    },
}

/// A column's value; the exact name first, then ignoring ASCII case, since unquoted SQL names are case-insensitive.
pub(crate) fn column<'a>(row: &'a Map<String, Value>, name: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    if let Some(v) = row.get(name) {
        return v;
    }
    row.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v).unwrap_or(&NULL)
}

impl ValueExpr {
    /// The value as a client stores it: no booleans, no nested JSON (objects and arrays become JSON text).
    pub fn eval(&self, row: &Map<String, Value>) -> Value {
        match self {
            ValueExpr::Column(c) => to_sqlite(column(row, c).clone()),
            ValueExpr::Literal(v) => v.clone(),
            ValueExpr::Cast(inner, ty) => cast(inner.eval(row), *ty),
            ValueExpr::Json { base, path, text } => {
                let doc = match base.eval_raw(row) {
                    Value::String(s) => match serde_json::from_str::<Value>(&s) {
                        Ok(v) => v,
                        Err(_) => return Value::Null,
                    },
                    v @ (Value::Object(_) | Value::Array(_)) => v,
                    _ => return Value::Null,
                };
                let Some(found) = walk(&doc, path) else { return Value::Null };
                if *text {
                    to_sqlite(found.clone())
                } else {
                    Value::String(found.to_string())
                }
            }
        }
    }

    /// Like `eval`, but a column holding a JSON object (e.g. PostgreSQL `jsonb`) is handed on as is, so that
    /// extraction does not need to re-parse its text form.
    fn eval_raw(&self, row: &Map<String, Value>) -> Value {
        match self {
            ValueExpr::Column(c) => column(row, c).clone(),
            other => other.eval(row),
        }
    }
}

fn walk<'a>(mut v: &'a Value, path: &[JsonStep]) -> Option<&'a Value> {
    for step in path {
        v = match (step, v) {
            (JsonStep::Key(k), Value::Object(m)) => m.get(k)?,
            (JsonStep::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Converts a database value into what a client's SQLite column holds.
pub(crate) fn to_sqlite(v: Value) -> Value {
    match v {
        Value::Bool(b) => Value::from(u8::from(b)),
        Value::Object(_) | Value::Array(_) => Value::String(v.to_string()),
        other => other,
    }
}

fn cast(v: Value, ty: CastType) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    match ty {
        CastType::Text => match v {
            Value::String(s) => Value::String(s),
            Value::Number(n) => Value::String(n.to_string()),
            other => Value::String(other.to_string()),
        },
        CastType::Integer => match v {
            Value::Number(n) => Value::from(number_to_i64(&n)),
            Value::String(s) => Value::from(text_prefix_number(&s).map(|n| number_to_i64(&n)).unwrap_or(0)),
            _ => Value::from(0),
        },
        CastType::Real => {
            let f = match v {
                Value::Number(n) => n.as_f64().unwrap_or(0.0),
                Value::String(s) => text_prefix_number(&s).and_then(|n| n.as_f64()).unwrap_or(0.0),
                _ => 0.0,
            };
            Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
        }
        CastType::Numeric => {
            let n = match v {
                Value::Number(n) => n,
                Value::String(s) => text_prefix_number(&s).unwrap_or_else(|| Number::from(0)),
                _ => Number::from(0),
            };
            // SQLite's NUMERIC keeps integral reals as integers.
            match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
                _ => Value::Number(n),
            }
        }
    }
}

/// SQLite truncates reals toward zero (and saturates) when casting to INTEGER.
fn number_to_i64(n: &Number) -> i64 {
    if let Some(i) = n.as_i64() {
        return i;
    }
    if let Some(u) = n.as_u64() {
        return i64::try_from(u).unwrap_or(i64::MAX);
    }
    n.as_f64().map(|f| f as i64).unwrap_or(0)
}

/// The longest numeric prefix of a text, as SQLite reads text in a numeric cast (`'12abc'` is 12, `'abc'` none).
fn text_prefix_number(s: &str) -> Option<Number> {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut end = 0;
    if end < b.len() && (b[end] == b'-' || b[end] == b'+') {
        end += 1;
    }
    let digits_start = end;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    let mut is_real = false;
    if end < b.len() && b[end] == b'.' {
        let mut e = end + 1;
        while e < b.len() && b[e].is_ascii_digit() {
            e += 1;
        }
        if e > end + 1 || end > digits_start {
            is_real = true;
            end = e;
        }
    }
    if end == digits_start || (end == digits_start + 1 && b[digits_start] == b'.') {
        return None;
    }
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut e = end + 1;
        if e < b.len() && (b[e] == b'-' || b[e] == b'+') {
            e += 1;
        }
        let exp_digits = e;
        while e < b.len() && b[e].is_ascii_digit() {
            e += 1;
        }
        if e > exp_digits {
            is_real = true;
            end = e;
        }
    }
    if !is_real {
        if let Ok(i) = t[..end].parse::<i64>() {
            return Some(Number::from(i));
        }
    }
    t[..end].parse::<f64>().ok().and_then(Number::from_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_prefixes_follow_sqlite() {
        assert_eq!(text_prefix_number("12abc"), Some(Number::from(12)));
        assert_eq!(text_prefix_number("  -7"), Some(Number::from(-7)));
        assert_eq!(text_prefix_number("3.5x").and_then(|n| n.as_f64()), Some(3.5));
        assert_eq!(text_prefix_number("1e3").and_then(|n| n.as_f64()), Some(1000.0));
        assert_eq!(text_prefix_number("abc"), None);
        assert_eq!(text_prefix_number("."), None);
        assert_eq!(text_prefix_number("-"), None);
        assert_eq!(text_prefix_number(""), None);
    }

    #[test]
    fn casts_follow_sqlite() {
        assert_eq!(cast(json!("42"), CastType::Integer), json!(42));
        assert_eq!(cast(json!("4.9"), CastType::Integer), json!(4));
        assert_eq!(cast(json!(-4.9), CastType::Integer), json!(-4));
        assert_eq!(cast(json!("abc"), CastType::Integer), json!(0));
        assert_eq!(cast(json!(1), CastType::Integer), json!(1));
        assert_eq!(cast(json!(7), CastType::Text), json!("7"));
        assert_eq!(cast(json!(2), CastType::Real), json!(2.0));
        assert_eq!(cast(json!("2.5"), CastType::Real), json!(2.5));
        assert_eq!(cast(json!("3.0"), CastType::Numeric), json!(3));
        assert_eq!(cast(json!("3.25"), CastType::Numeric), json!(3.25));
        assert_eq!(cast(json!("12"), CastType::Numeric), json!(12));
        assert_eq!(cast(Value::Null, CastType::Integer), Value::Null);
    }

    #[test]
    fn sqlite_conversion() {
        assert_eq!(to_sqlite(json!(true)), json!(1));
        assert_eq!(to_sqlite(json!(false)), json!(0));
        assert_eq!(to_sqlite(json!({"a": [1]})), json!("{\"a\":[1]}"));
        assert_eq!(to_sqlite(json!(null)), json!(null));
        assert_eq!(to_sqlite(json!(1.5)), json!(1.5));
    }
}
