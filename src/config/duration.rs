//! Durations as users write them: `30s`, `500ms`, `2m`, `1h`, or a bare
//! number of seconds, up to [`MAX_DURATION`].

use std::time::Duration;

/// The longest duration a config or a flag may give: 24 days (576h), more
/// than any timeout an admin means, and short enough that a deadline this
/// far ahead fits every clock and poll(2)'s milliseconds in an `i32`.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 24 * 3600);

/// Parses a duration: a whole number followed by `ms`, `s`, `m` or `h`, or
/// a bare number meaning seconds; at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("invalid duration '{s}': expected a number and a unit, as in 30s, 500ms, 2m")
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "invalid duration '{s}': the unit must be ms, s, m or h"
            ))
        }
    };
    if d > MAX_DURATION {
        return Err(format!("invalid duration '{s}': at most 576h (24 days)"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("7x").unwrap_err().contains("unit"));
        assert!(parse_duration("s").unwrap_err().contains("number"));
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn at_most_24_days() {
        assert_eq!(parse_duration("576h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("2073600"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("2073600000ms"), Ok(MAX_DURATION));
        for over in ["577h", "2073601s", "2073600001ms", "18446744073709551615h"] {
            assert!(
                parse_duration(over).unwrap_err().contains("at most 576h"),
                "{over}"
            );
        }
    }
}
