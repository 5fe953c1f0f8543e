//! Time values of the configuration: durations ("90s", "30m", "12h", "3d") and sync
//! schedules (`"daily 02:00"` UTC or `"every 6h"`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Parses "90s", "30m", "12h" or "3d".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    // The unit is the last character (which may be any character of the input).
    let cut = t.char_indices().last().map_or(0, |(i, _)| i);
    let (num, unit) = t.split_at(cut);
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like \"90s\", \"30m\", \"12h\" or \"3d\""))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// Writes a duration as the configuration would ("6h", "90s", "3d"): the largest
/// unit that divides it exactly.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => "0s".to_string(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// When a repository syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at this UTC time.
    Daily { hour: u8, minute: u8 },
    /// At this fixed interval, starting one interval after the server starts.
    Every(Duration),
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Daily { hour, minute } => write!(f, "daily {hour:02}:{minute:02} UTC"),
            Schedule::Every(d) => write!(f, "every {}s", d.as_secs()),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Schedule, String> {
        let s = s.trim();
        let bad = || {
            format!("schedule {s:?}: expected \"daily HH:MM\" (UTC) or \"every N\" with s, m, h or d (e.g. \"every 6h\")")
        };
        if let Some(t) = s.strip_prefix("daily ") {
            let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
            let hour: u8 = h.parse().map_err(|_| bad())?;
            let minute: u8 = m.parse().map_err(|_| bad())?;
            if hour > 23 || minute > 59 {
                return Err(bad());
            }
            return Ok(Schedule::Daily { hour, minute });
        }
        if let Some(t) = s.strip_prefix("every ") {
            let d = parse_duration(t).map_err(|_| bad())?;
            if d.is_zero() {
                return Err(bad());
            }
            return Ok(Schedule::Every(d));
        }
        Err(bad())
    }
}

impl Schedule {
    /// How long from `now` (unix seconds) until the next run.
    pub fn wait_from(&self, now: i64) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Daily { hour, minute } => {
                let target = i64::from(*hour) * 3600 + i64::from(*minute) * 60;
                let today = now.rem_euclid(86_400);
                let wait = (target - today).rem_euclid(86_400);
                Duration::from_secs(if wait == 0 { 86_400 } else { wait as u64 })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_as_the_config_writes_them() {
        for text in ["6h", "90s", "3d", "30m", "0s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn any_text_is_refused_with_a_message_not_a_panic() {
        for text in ["", "h", "5", "5x", "3é", "é", "1\u{10ffff}", "\u{f1}\u{84}"] {
            assert!(parse_duration(text).is_err(), "{text:?}");
        }
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn schedules_parse_and_wait() {
        assert_eq!(
            "daily 02:00".parse(),
            Ok(Schedule::Daily { hour: 2, minute: 0 })
        );
        assert_eq!(
            "every 6h".parse(),
            Ok(Schedule::Every(Duration::from_secs(6 * 3600)))
        );
        assert_eq!(
            "every 90s".parse(),
            Ok(Schedule::Every(Duration::from_secs(90)))
        );
        for bad in ["daily 25:00", "weekly", "every 0m", "every 5y", "daily 2"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
        let daily = Schedule::Daily { hour: 2, minute: 0 };
        // 01:00 UTC → one hour; 02:00 → a whole day; 03:00 → 23 hours.
        assert_eq!(daily.wait_from(3600), Duration::from_secs(3600));
        assert_eq!(daily.wait_from(7200), Duration::from_secs(86_400));
        assert_eq!(
            daily.wait_from(86_400 * 3 + 3 * 3600),
            Duration::from_secs(23 * 3600)
        );
    }
}
