//! Sizes as users write them: `4096`, `512K`, `64M`, `1G` (powers of 1024),
//! up to [`MAX_SIZE`].

/// The largest size a config or a flag may give: 1 PiB (1048576G), more
/// memory than any machine a worker runs on, and far from the `u64::MAX`
/// that setrlimit(2) reads as "unlimited".
pub const MAX_SIZE: u64 = 1 << 50;

/// Parses a byte count with an optional K, M or G suffix; at most
/// [`MAX_SIZE`].
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (number, shift) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| {
            format!("invalid size '{s}': expected a number with an optional K, M or G")
        })?;
    check_size(n).map_err(|e| format!("invalid size '{s}': {e}"))
}

/// `n` if it is at most [`MAX_SIZE`], for a size written as a bare number.
pub fn check_size(n: u64) -> Result<u64, String> {
    if n > MAX_SIZE {
        return Err("at most 1048576G (1 PiB)".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn at_most_1_pib() {
        assert_eq!(parse_size("1048576G"), Ok(MAX_SIZE));
        assert_eq!(parse_size(&MAX_SIZE.to_string()), Ok(MAX_SIZE));
        for over in ["1048577G", "1125899906842625", "17179869183G"] {
            assert!(
                parse_size(over).unwrap_err().contains("at most 1048576G"),
                "{over}"
            );
        }
    }
}
