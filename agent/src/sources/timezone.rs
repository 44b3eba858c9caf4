//! The zone of log stamps that carry none (RFC 3164 `Nov 26 17:06:09`, ISO without offset).
//! syslog writes them in the writing host's local time, so reading them as UTC on a host that is
//! not on UTC shifts every event by hours: windows count the wrong minutes, and events land in
//! the future or the past and are refused. The agent reads them in the host's zone by default;
//! `--log-timezone` names another for logs written elsewhere (a forwarded syslog, a container
//! on UTC, a replayed file).

use chrono::{FixedOffset, NaiveDateTime, TimeZone};
use std::str::FromStr;

/// Where zone-less stamps are placed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogTimezone {
    /// The zone of this host (`TZ`, else /etc/localtime).
    #[default]
    Local,
    Utc,
    /// A fixed offset such as `+02:00`.
    Fixed(FixedOffset),
    /// An IANA zone such as `Europe/Berlin`, daylight saving included.
    Named(chrono_tz::Tz),
}

impl LogTimezone {
    /// Unix milliseconds of a zone-less stamp. In a DST fold the earlier instant is taken; a
    /// stamp in a DST gap (which no clock showed) is read one hour later.
    pub fn resolve(&self, t: &NaiveDateTime) -> Option<i64> {
        fn at<Z: TimeZone>(z: &Z, t: &NaiveDateTime) -> Option<i64> {
            z.from_local_datetime(t)
                .earliest()
                .or_else(|| {
                    z.from_local_datetime(&(*t + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|d| d.timestamp_millis())
        }
        match self {
            Self::Local => at(&chrono::Local, t),
            Self::Utc => Some(t.and_utc().timestamp_millis()),
            Self::Fixed(o) => at(o, t),
            Self::Named(z) => at(z, t),
        }
    }
}

impl FromStr for LogTimezone {
    type Err = String;

    /// `local`, `UTC`, `+02:00` / `-0530`, or an IANA name (`Europe/Berlin`).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "local" => return Ok(Self::Local),
            "utc" | "z" | "gmt" => return Ok(Self::Utc),
            _ => {}
        }
        if s.starts_with(['+', '-']) {
            let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
            let ok = digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit());
            let secs = ok
                .then(|| {
                    Some(
                        digits[..2].parse::<i32>().ok()? * 3600
                            + digits[2..].parse::<i32>().ok()? * 60,
                    )
                })
                .flatten()
                .filter(|x| *x < 24 * 3600);
            let sign = if s.starts_with('-') { -1 } else { 1 };
            return secs
                .and_then(|x| FixedOffset::east_opt(sign * x))
                .map(Self::Fixed)
                .ok_or_else(|| format!("'{s}' is not an offset like +02:00"));
        }
        s.parse::<chrono_tz::Tz>().map(Self::Named).map_err(|_| {
            format!("'{s}' is not a time zone (expected local, UTC, an offset like +02:00, or a name like Europe/Berlin)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn zones_place_the_same_stamp_hours_apart() {
        let t = naive("2026-07-01 12:00:00");
        let utc = LogTimezone::Utc.resolve(&t).unwrap();
        let berlin: LogTimezone = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            utc - berlin.resolve(&t).unwrap(),
            2 * 3_600_000,
            "CEST is UTC+2"
        );
        let fixed: LogTimezone = "-05:30".parse().unwrap();
        assert_eq!(fixed.resolve(&t).unwrap() - utc, 5 * 3_600_000 + 1_800_000);
        assert_eq!(
            "+0200".parse::<LogTimezone>().unwrap(),
            LogTimezone::Fixed(FixedOffset::east_opt(7200).unwrap())
        );
        assert_eq!("utc".parse::<LogTimezone>().unwrap(), LogTimezone::Utc);
    }

    #[test]
    fn dst_gap_and_fold_resolve() {
        let berlin: LogTimezone = "Europe/Berlin".parse().unwrap();
        // 02:30 on 2026-03-29 never happened in Berlin: read as 03:30 CEST = 01:30 UTC.
        let gap = berlin.resolve(&naive("2026-03-29 02:30:00")).unwrap();
        assert_eq!(
            gap,
            LogTimezone::Utc
                .resolve(&naive("2026-03-29 01:30:00"))
                .unwrap()
        );
        // 02:30 on 2026-10-25 happened twice: the first (CEST) is taken.
        let fold = berlin.resolve(&naive("2026-10-25 02:30:00")).unwrap();
        assert_eq!(
            fold,
            LogTimezone::Utc
                .resolve(&naive("2026-10-25 00:30:00"))
                .unwrap()
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        for bad in ["Mars/Olympus", "+25:00", "+2", "", "1234"] {
            let e = bad.parse::<LogTimezone>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
