//! Parsers for the text forms config values take: durations, weekdays, times of day.

use std::time::Duration;

use jiff::civil::{Time, Weekday};

/// Parses `"90s"`, `"10m"`, `"2h"`, `"500ms"` or `"1d"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit; write e.g. \"30s\", \"10m\" or \"2h\""))?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like \"30s\" or \"10m\""))?;
    let factor = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}; use ms, s, m, h or d"
            ));
        }
    };
    // Anything over a year is a typo, and keeps the arithmetic far from overflowing.
    match n.checked_mul(factor) {
        Some(secs) if secs <= 366 * 86_400 => Ok(Duration::from_secs(secs)),
        _ => Err(format!("{text:?} is too long; at most a year")),
    }
}

pub fn parse_weekday(text: &str) -> Result<Weekday, String> {
    const DAYS: [(&str, Weekday); 7] = [
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
        ("sunday", Weekday::Sunday),
    ];
    let lower = text.trim().to_ascii_lowercase();
    DAYS.iter()
        .find(|(name, _)| lower == *name || (lower.len() == 3 && name.starts_with(&lower)))
        .map(|(_, day)| *day)
        .ok_or_else(|| format!("{text:?} is not a weekday; write e.g. \"monday\" or \"mon\""))
}

pub fn parse_time(text: &str) -> Result<Time, String> {
    let bad = || format!("{text:?} is not a time of day; write \"HH:MM\", e.g. \"12:00\"");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let digits = |t: &str| (1..=2).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }

    #[test]
    fn weekdays_and_times() {
        assert_eq!(parse_weekday("Monday"), Ok(Weekday::Monday));
        assert_eq!(parse_weekday("sun"), Ok(Weekday::Sunday));
        assert!(parse_weekday("someday").is_err());
        assert!(parse_weekday("monkey").is_err());
        assert_eq!(parse_time("09:30"), Ok(Time::new(9, 30, 0, 0).unwrap()));
        assert!(parse_time("25:00").is_err());
        assert!(parse_time("noon").is_err());
        assert!(parse_time("+1:-0").is_err());
    }
}
