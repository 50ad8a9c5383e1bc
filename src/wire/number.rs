//! Numbers written as both codecs write them, without `fmt` or an allocation: every
//! record carries two ints and a float, and `to_string` or the general `%g` formatter
//! cost a heap string and some hundreds of instructions each.

/// `%Ld` (OCaml's and Yojson's integer form) without going through `fmt`.
pub fn write_int(out: &mut Vec<u8>, i: i64) {
    let mut digits = [0u8; 20];
    let mut pos = digits.len();
    let mut n = i.unsigned_abs();
    loop {
        pos -= 1;
        digits[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[pos..]);
}

/// `d` as an integer when `%.16g` prints it as one: a whole number below 10^15 (so no
/// exponent and exact in an `f64`), not `-0` (printed with its sign). Progress values 0
/// and 1 are the usual floats on the wire.
pub fn whole(d: f64) -> Option<i64> {
    (d.fract() == 0.0 && d.abs() < 1e15 && !(d == 0.0 && d.is_sign_negative())).then_some(d as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_as_fmt_writes_them() {
        for i in [
            0,
            1,
            -1,
            9,
            10,
            -10,
            42,
            1234567890,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            let mut out = Vec::new();
            write_int(&mut out, i);
            assert_eq!(out, i.to_string().as_bytes(), "{i}");
        }
    }

    #[test]
    fn whole_is_what_g16_prints_as_an_integer() {
        for d in [
            0.0,
            1.0,
            -1.0,
            2.0,
            123.0,
            1e14,
            999_999_999_999_999.0,
            -1e14,
        ] {
            let i = whole(d).expect("whole");
            assert_eq!(crate::printf::format_g(d, 16), i.to_string(), "{d}");
            // JSON-RPC writes such a float as the integer and `.0` (Yojson's form).
            assert_eq!(
                crate::wire::jsonrpc::format_float(d),
                format!("{i}.0"),
                "{d}"
            );
        }
        for d in [-0.0, 0.5, 1e15, -1e15, 1e300, f64::NAN, f64::INFINITY, 0.1] {
            assert_eq!(whole(d), None, "{d}");
        }
    }
}
