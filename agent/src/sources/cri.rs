//! The Kubernetes container log format (CRI), as the kubelet writes /var/log/pods:
//! `<RFC 3339 nano time> <stdout|stderr> <F|P> <content>`, where `P` marks a partial line the
//! next ones continue and `F` its end. Pure: the joiner turns file lines into whole log lines
//! with the container runtime's (zoned, exact) time stamp.

use super::postfix::{parse_line_in, Line, Parsed};
use super::timezone::LogTimezone;
use chrono::{DateTime, Utc};

/// Longest joined line kept; a longer one is cut.
const MAX_JOINED: usize = 64 * 1024;

/// One whole line a container wrote, with the runtime's stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLine {
    /// Unix milliseconds of the stamp of its first part.
    pub time_ms: i64,
    /// The stamp as written (RFC 3339, with zone).
    pub stamp: String,
    pub content: String,
}

impl ContainerLine {
    /// The Postfix line inside, at the runtime's stamp (zoned and exact, where Postfix's own
    /// stamp, if any, has none); a line without a header of its own (`postfix/smtpd[1]: …`) is
    /// `host`'s. Other output of the container is no evidence, not a line gone wrong.
    pub fn to_line(&self, host: &str, now: DateTime<Utc>, tz: &LogTimezone) -> Line {
        let mut read = parse_line_in(&self.content, now, tz);
        if read.parsed == Parsed::NotUnderstood {
            let line = format!("{} {host} {}", self.stamp, self.content);
            read = parse_line_in(&line, now, tz);
        }
        match &mut read.parsed {
            Parsed::Event(e) => e.time_unix_ms = self.time_ms,
            p @ Parsed::NotUnderstood => *p = Parsed::Ignored,
            _ => {}
        }
        read
    }
}

/// Does `line` look like a CRI log line (a stamp, then `stdout` or `stderr`)?
pub fn looks_like_cri(line: &str) -> bool {
    let mut it = line.splitn(3, ' ');
    let (Some(stamp), Some(stream)) = (it.next(), it.next()) else {
        return false;
    };
    stamp.starts_with(|c: char| c.is_ascii_digit()) && matches!(stream, "stdout" | "stderr")
}

/// Joins partial lines, per stream (stdout and stderr interleave).
#[derive(Debug, Default)]
pub struct CriJoiner {
    pending: [Option<ContainerLine>; 2],
}

impl CriJoiner {
    /// Reads one file line; a whole container line when this one ends it, Err for a line that
    /// is not in the CRI format.
    pub fn push(&mut self, line: &str) -> Result<Option<ContainerLine>, String> {
        let mut it = line.splitn(4, ' ');
        let (Some(stamp), Some(stream), Some(tag)) = (it.next(), it.next(), it.next()) else {
            return Err("not a CRI log line".into());
        };
        let content = it.next().unwrap_or("");
        let time_ms = DateTime::parse_from_rfc3339(stamp)
            .map_err(|_| format!("bad CRI time stamp {stamp:?}"))?
            .timestamp_millis();
        let slot = match stream {
            "stdout" => 0,
            "stderr" => 1,
            other => return Err(format!("bad CRI stream {other:?}")),
        };
        let partial = match tag.split(':').next() {
            Some("F") => false,
            Some("P") => true,
            _ => return Err(format!("bad CRI tag {tag:?}")),
        };
        let part = self.pending[slot].get_or_insert_with(|| ContainerLine {
            time_ms,
            stamp: stamp.to_string(),
            content: String::new(),
        });
        if part.content.len() + content.len() <= MAX_JOINED {
            part.content.push_str(content);
        }
        Ok(if partial {
            None
        } else {
            self.pending[slot].take()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_lines_join_per_stream() {
        let mut j = CriJoiner::default();
        let t = "2026-11-27T20:15:01.123456789Z";
        assert_eq!(
            j.push(&format!("{t} stdout P postfix/smtpd[1]: conn")),
            Ok(None)
        );
        assert_eq!(
            j.push(&format!("{t} stderr F a warning"))
                .unwrap()
                .unwrap()
                .content,
            "a warning"
        );
        let whole = j
            .push("2026-11-27T20:15:01.2+00:00 stdout F ect from unknown[192.0.2.1]")
            .unwrap()
            .unwrap();
        assert_eq!(
            whole.content,
            "postfix/smtpd[1]: connect from unknown[192.0.2.1]"
        );
        assert_eq!(whole.stamp, t, "the first part's stamp");
        assert_eq!(whole.time_ms % 1000, 123);
        // An empty line is a line.
        assert_eq!(
            j.push(&format!("{t} stdout F")).unwrap().unwrap().content,
            ""
        );
    }

    #[test]
    fn the_postfix_line_inside_gets_the_runtime_stamp() {
        let now = Utc::now();
        let mut j = CriJoiner::default();
        let mut line = |l: &str| {
            j.push(l)
                .unwrap()
                .unwrap()
                .to_line("node-1", now, &LogTimezone::Utc)
        };
        // Without a header of its own, and with Postfix's zone-less one: the CRI time either way.
        for content in [
            "postfix/smtpd[7]: connect from unknown[192.0.2.7]",
            "Nov 27 23:59:59 pod postfix/smtpd[7]: connect from unknown[192.0.2.7]",
        ] {
            let read = line(&format!("2026-11-27T20:15:01.5+01:00 stdout F {content}"));
            let Parsed::Event(e) = read.parsed else {
                panic!("{content}")
            };
            assert_eq!(e.time_unix_ms, 1_795_806_901_500, "{content}");
            assert_eq!(read.process, Some(("postfix/smtpd".into(), 7)));
        }
        let other = line("2026-11-27T20:15:01Z stdout F starting postfix");
        assert_eq!(other.parsed, Parsed::Ignored);
    }

    #[test]
    fn other_formats_are_refused() {
        let mut j = CriJoiner::default();
        for bad in [
            "",
            "Nov 27 20:15:01 mx postfix/smtpd[1]: connect",
            "2026-11-27T20:15:01Z stdin F x",
            "2026-11-27T20:15:01Z stdout X x",
            "yesterday stdout F x",
        ] {
            assert!(j.push(bad).is_err(), "{bad:?}");
        }
    }
}
