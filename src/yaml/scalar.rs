//! What a plain (unquoted) scalar is under the YAML 1.2 core schema. Quoted and block
//! scalars are always strings.

/// A plain scalar's type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plain {
    Null,
    Bool(bool),
    /// Fits i64 or u64 (negative values are always i64).
    Int(Int),
    /// An integer spelling too large for 64 bits.
    IntOverflow,
    Float(f64),
    Str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int {
    Neg(i64),
    Pos(u64),
}

/// Resolves a plain scalar. Decimal integers with leading zeros (`0443`) stay strings:
/// YAML 1.1 reads them as octal, so either reading would surprise someone.
pub fn resolve(s: &str) -> Plain {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = int(s) {
        return i;
    }
    if is_float(s) {
        if let Ok(f) = s.parse::<f64>() {
            return Plain::Float(f);
        }
    }
    Plain::Str
}

fn int(s: &str) -> Option<Plain> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        if neg || s.starts_with('+') {
            return None; // core schema: hex and octal are unsigned
        }
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o") {
        if neg || s.starts_with('+') {
            return None;
        }
        (8, d)
    } else {
        if body.len() > 1 && body.starts_with('0') {
            return None;
        }
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let Ok(mag) = u128::from_str_radix(digits, radix) else {
        return Some(Plain::IntOverflow);
    };
    Some(if neg {
        match i64::try_from(mag) {
            Ok(v) => Plain::Int(Int::Neg(-v)),
            Err(_) if mag == 1u128 << 63 => Plain::Int(Int::Neg(i64::MIN)),
            Err(_) => Plain::IntOverflow,
        }
    } else {
        match u64::try_from(mag) {
            Ok(v) => Plain::Int(Int::Pos(v)),
            Err(_) => Plain::IntOverflow,
        }
    })
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - f;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    // Digits alone are an integer, or (with leading zeros) a string: never a float.
    let dotted = i > int_start + int_digits;
    if !dotted && !(i < b.len() && (b[i] == b'e' || b[i] == b'E')) {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema() {
        assert_eq!(resolve("~"), Plain::Null);
        assert_eq!(resolve(""), Plain::Null);
        assert_eq!(resolve("True"), Plain::Bool(true));
        assert_eq!(resolve("yes"), Plain::Str, "YAML 1.1 booleans are strings");
        assert_eq!(resolve("on"), Plain::Str);
        assert_eq!(resolve("443"), Plain::Int(Int::Pos(443)));
        assert_eq!(resolve("+443"), Plain::Int(Int::Pos(443)));
        assert_eq!(resolve("-1"), Plain::Int(Int::Neg(-1)));
        assert_eq!(resolve("0"), Plain::Int(Int::Pos(0)));
        assert_eq!(resolve("0x1F"), Plain::Int(Int::Pos(31)));
        assert_eq!(resolve("0o17"), Plain::Int(Int::Pos(15)));
        assert_eq!(resolve("0443"), Plain::Str);
        assert_eq!(resolve("1_000"), Plain::Str);
        assert_eq!(resolve("-0x1"), Plain::Str);
        assert_eq!(resolve("18446744073709551616"), Plain::IntOverflow);
        assert_eq!(
            resolve("-9223372036854775808"),
            Plain::Int(Int::Neg(i64::MIN))
        );
        assert_eq!(resolve("-9223372036854775809"), Plain::IntOverflow);
        assert_eq!(resolve("1.5"), Plain::Float(1.5));
        assert_eq!(resolve("1e3"), Plain::Float(1000.0));
        assert_eq!(resolve(".5"), Plain::Float(0.5));
        assert_eq!(resolve("1."), Plain::Float(1.0));
        assert_eq!(resolve("."), Plain::Str);
        assert_eq!(resolve("1e"), Plain::Str);
        assert_eq!(resolve("10.0.0.1"), Plain::Str);
        assert!(matches!(resolve(".nan"), Plain::Float(f) if f.is_nan()));
        assert_eq!(resolve("/usr"), Plain::Str);
    }
}
