//! C's `printf("%.<P>g")`, which xapi uses for floats: `%.16g` on the XML-RPC wire and
//! `%0.18g` for the database string form that `get_all_records_where` compares against.
//!
//! Rust's `{:e}` and `{:.N}` formatting are exact (correctly rounded decimal), so we let
//! them produce the digits and only apply C's choice between fixed and exponential
//! notation, the trailing-zero removal, and C's exponent spelling (`e+21`, `e-05`).

/// Formats `value` as C's `%.<precision>g` would (precision 0 is treated as 1, like C).
pub fn format_g(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return if value.is_sign_negative() {
            "-nan"
        } else {
            "nan"
        }
        .to_string();
    }
    if value.is_infinite() {
        return if value < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    let p = precision.max(1);
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Exponent after rounding to p significant digits.
    let sci = format!("{:.*e}", p - 1, value);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let x: i32 = exp.parse().expect("{:e} exponent is an integer");
    if x < -4 || x >= p as i32 {
        let mantissa = trim_fraction(mantissa);
        let sign = if x < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", x.abs())
    } else {
        let decimals = (p as i32 - 1 - x) as usize;
        trim_fraction(&format!("{value:.decimals$}")).to_string()
    }
}

/// `%.16g`: xapi's XML-RPC float form.
pub fn format_g16(value: f64) -> String {
    format_g(value, 16)
}

/// Drops trailing zeros of a fraction, and the point itself if nothing is left after it.
fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_c_printf_g16() {
        // Expected strings are what glibc's printf("%.16g") prints.
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.25, "0.25"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000"),
            (123456789.125, "123456789.125"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.0 / 3.0, "0.6666666666666666"),
            (-1.5, "-1.5"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (1e23, "9.999999999999999e+22"),
            (5e-324, "4.940656458412465e-324"),
        ];
        for (v, want) in cases {
            assert_eq!(format_g16(*v), *want, "value {v:e}");
        }
    }

    #[test]
    fn matches_c_printf_g18() {
        assert_eq!(format_g(0.1, 18), "0.100000000000000006");
        assert_eq!(format_g(1.0, 18), "1");
        assert_eq!(format_g(0.5, 18), "0.5");
    }
}
