//! Sizes as human text (`"10GiB"`, `"500MiB"`, `"4096"`): how every byte count in a
//! flag or a `wisp.toml` is written, and how the CLI shows one.

/// Parses a whole number of bytes, optionally followed by `B`, `KiB`/`K`, `MiB`/`M`,
/// `GiB`/`G` or `TiB`/`T` (any case), with an error that says what is accepted.
pub fn parse(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let not_a_size = || {
        format!(
            "`{text}` is not a size: use a whole number of bytes, KiB, MiB, GiB or TiB, such as \"10GiB\""
        )
    };
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        _ => return Err(not_a_size()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(not_a_size)
}

/// A size for people: `512 B`, `12.0 MiB`.
pub fn format(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse("5GiB"), Ok(5 << 30));
        assert_eq!(parse(" 64k "), Ok(64 << 10));
        assert_eq!(parse("4096"), Ok(4096));
        assert!(
            parse("3 parsecs")
                .unwrap_err()
                .contains("`3 parsecs` is not a size")
        );
        assert!(parse("99999999999999TiB").is_err());
        for bad in ["", "GiB", "10GB", "1.5GiB", "-1", "10 gigs", "99999999TiB"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("10 GiB"), Ok(10 << 30));
        assert_eq!(parse("7B"), Ok(7));
        assert_eq!(format(512), "512 B");
        assert_eq!(format(12 << 20), "12.0 MiB");
        assert_eq!(format(1023), "1023 B");
        assert_eq!(format(1024), "1.0 KiB");
        assert_eq!(format(12 * 1024 * 1024 + 512 * 1024), "12.5 MiB");
    }
}
