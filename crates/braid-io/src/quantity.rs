//! The grammar of the quantities paths are described with — rates, times, sizes and
//! percentages — shared by the TUN path specs here and the command line's simulator specs.
//! Only the grammar lives here: each caller applies its own bounds and error messages.

/// Splits `s` into its leading number and the unit after it.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// A non-negative finite decimal number (digits with at most one point).
fn number(s: &str) -> Option<f64> {
    if s.is_empty() || s == "." || s.matches('.').count() > 1 {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

/// RATE: a number and `bit`, `kbit`, `mbit` or `gbit` (decimal, any case), in bits per second.
pub fn rate_bps(s: &str) -> Option<f64> {
    let (num, unit) = split_number(s);
    let mult = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return None,
    };
    Some((number(num)? * mult).round())
}

/// TIME: a number and `us`, `ms` or `s`, in seconds.
pub fn seconds(s: &str) -> Option<f64> {
    let (num, unit) = split_number(s);
    let div = match unit {
        "us" => 1e6,
        "ms" => 1e3,
        "s" => 1.0,
        _ => return None,
    };
    Some(number(num)? / div)
}

/// SIZE: a number of bytes with an optional unit, in bytes: `k`, `kB`, `M`, `MB`, `G`, `GB`,
/// `T`, `TB` decimal; `KiB`, `MiB`, `GiB`, `TiB` binary; `B` or none: bytes. Any case
/// (`10mib`, `1gb`): sizes are bytes, so no spelling is ambiguous.
pub fn bytes(s: &str) -> Option<f64> {
    let (num, unit) = split_number(s);
    const KI: f64 = 1024.0;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => KI,
        "mib" => KI * KI,
        "gib" => KI * KI * KI,
        "tib" => KI * KI * KI * KI,
        _ => return None,
    };
    Some((number(num)? * mult).round())
}

/// PCT: a number with or without `%`, in percent (no range check).
pub fn percent(s: &str) -> Option<f64> {
    number(s.strip_suffix('%').unwrap_or(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(rate_bps("100mbit"), Some(1e8));
        assert_eq!(rate_bps("1.5GBIT"), Some(1.5e9));
        assert_eq!(rate_bps("10"), None);
        assert_eq!(rate_bps("mbit"), None);
        assert_eq!(seconds("500us"), Some(0.0005));
        assert_eq!(seconds("10ms"), Some(0.01));
        assert_eq!(seconds("1.2.3s"), None);
        assert_eq!(seconds("5m"), None);
        assert_eq!(bytes("64MiB"), Some(67108864.0));
        assert_eq!(bytes("100000"), Some(100000.0));
        assert_eq!(bytes("1.5GB"), Some(1.5e9));
        assert_eq!(bytes("-1"), None);
        assert_eq!(bytes("10mib"), Some(10.0 * 1024.0 * 1024.0));
        assert_eq!(bytes("10MIB"), Some(10.0 * 1024.0 * 1024.0));
        assert_eq!(bytes("2gb"), Some(2e9));
        assert_eq!(bytes("1TiB"), Some(1024f64.powi(4)));
        assert_eq!(bytes("3b"), Some(3.0));
        assert_eq!(bytes("10mi"), None);
        assert_eq!(bytes("10mbit"), None);
        assert_eq!(percent("1%"), Some(1.0));
        assert_eq!(percent("0.5"), Some(0.5));
        assert_eq!(percent("%"), None);
    }
}
