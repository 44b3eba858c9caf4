//! The RFC 3164 header (`Nov 26 17:06:09 mx1 postfix/smtpd[4242]: …`) read without a regex:
//! nearly every line has one, and the header regex with its captures was the largest part of
//! parsing a line. The reader takes exactly what the header pattern takes and gives up — leaving
//! the line to the pattern — on anything it is not sure of (a non-ASCII byte, a tab, a stray
//! bracket), so the two never disagree; a property test holds them to it.

/// The fields of a BSD header, as the header pattern's captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BsdFields<'a> {
    pub month: &'a str,
    pub day: &'a str,
    pub hms: &'a str,
    pub host: &'a str,
    pub program: &'a str,
    pub pid: Option<&'a str>,
    pub msg: &'a str,
}

impl<'a> BsdFields<'a> {
    /// The fields from the header pattern's captures.
    pub fn from_captures(c: &regex::Captures<'a>) -> Option<BsdFields<'a>> {
        Some(BsdFields {
            month: c.get(1)?.as_str(),
            day: c.get(2)?.as_str(),
            hms: c.get(3)?.as_str(),
            host: c.get(4)?.as_str(),
            program: c.get(5)?.as_str(),
            pid: c.get(6).map(|m| m.as_str()),
            msg: c.get(7)?.as_str(),
        })
    }
}

/// `line`'s header fields, or None to let the pattern decide.
pub fn bsd_fields(line: &str) -> Option<BsdFields<'_>> {
    let b = line.as_bytes();
    let at = |i: usize| b.get(i).copied();
    if !(at(0)?.is_ascii_uppercase() && at(1)?.is_ascii_lowercase() && at(2)?.is_ascii_lowercase())
    {
        return None;
    }
    let mut i = 3;
    let spaces = i;
    while at(i) == Some(b' ') {
        i += 1;
    }
    if i == spaces {
        return None;
    }
    let day_start = i;
    while at(i).is_some_and(|c| c.is_ascii_digit()) {
        i += 1;
    }
    if !(1..=2).contains(&(i - day_start)) || at(i) != Some(b' ') {
        return None;
    }
    let day = &line[day_start..i];
    i += 1;
    let hms = line.get(i..i + 8)?;
    let h = hms.as_bytes();
    let digit = |k: usize| h[k].is_ascii_digit();
    if !(digit(0) && digit(1) && h[2] == b':' && digit(3) && digit(4) && h[5] == b':')
        || !(digit(6) && digit(7))
        || at(i + 8) != Some(b' ')
    {
        return None;
    }
    i += 9;
    // The host: printable ASCII up to one space.
    let host_start = i;
    while at(i).is_some_and(|c| c.is_ascii_graphic()) {
        i += 1;
    }
    if i == host_start || at(i) != Some(b' ') {
        return None;
    }
    let host = &line[host_start..i];
    i += 1;
    // The program: printable ASCII but '[' and ':'.
    let program_start = i;
    while at(i).is_some_and(|c| c.is_ascii_graphic() && c != b'[' && c != b':') {
        i += 1;
    }
    if i == program_start {
        return None;
    }
    let program = &line[program_start..i];
    let mut pid = None;
    if at(i) == Some(b'[') {
        let pid_start = i + 1;
        let mut j = pid_start;
        while at(j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
        if j == pid_start || at(j) != Some(b']') {
            return None;
        }
        pid = Some(&line[pid_start..j]);
        i = j + 1;
    }
    if at(i) != Some(b':') || at(i + 1) != Some(b' ') {
        return None;
    }
    let msg = &line[i + 2..];
    // The pattern's `.*$` stops at a line feed.
    if msg.contains('\n') {
        return None;
    }
    Some(BsdFields {
        month: &line[..3],
        day,
        hms,
        host,
        program,
        pid,
        msg,
    })
}

#[cfg(test)]
mod tests {
    use super::{bsd_fields, BsdFields};
    use proptest::prelude::*;

    /// The parser's header pattern, read as fields.
    fn by_pattern(line: &str) -> Option<BsdFields<'_>> {
        BsdFields::from_captures(&crate::sources::postfix::patterns().bsd.captures(line)?)
    }

    #[test]
    fn reads_what_postfix_writes() {
        let f = bsd_fields("Nov  6 07:01:02 mx1 postfix/smtpd[4242]: connect from a[192.0.2.1]")
            .unwrap();
        assert_eq!(
            (f.month, f.day, f.hms, f.host, f.program, f.pid),
            ("Nov", "6", "07:01:02", "mx1", "postfix/smtpd", Some("4242"))
        );
        assert_eq!(f.msg, "connect from a[192.0.2.1]");
        let f = bsd_fields("Nov 26 17:06:09 mx1 kernel: x").unwrap();
        assert_eq!((f.program, f.pid, f.msg), ("kernel", None, "x"));
    }

    #[test]
    fn agrees_with_the_pattern_on_odd_lines() {
        for line in [
            "Nov 26 17:06:09 mx1 postfix/smtpd[12]: ",
            "Nov 26 17:06:09 mx1 postfix/smtpd[]: x",
            "Nov 26 17:06:09 mx1 postfix/smtpd[1a]: x",
            "Nov 126 17:06:09 mx1 p: x",
            "Nov 26 17:06:09  mx1 p: x",
            "Nov 26 17:06:09 mx1\tp: x",
            "Nov 26 17:06:09 mx1 p:x",
            "Nov 26 17:06:09 mx1 p[1]:: x",
            "Nov 26 17:06:09 mx1 p[1] : x",
            "Nov 26 7:06:09 mx1 p: x",
            "nov 26 17:06:09 mx1 p: x",
            "Nov 26 17:06:09 mx\u{e9}1 p: x",
            "Nov 26 17:06:09 mx1 p\u{a0}q: x",
            "Nov 26 17:06:09 mx1 p: caf\u{e9}\r",
            "Nov 26 17:06:09 mx1 p: a\nb",
            "Nov \u{661}6 17:06:09 mx1 p: x",
            "Nov 26 17:06:09 mx1 [p]: x",
            "Nov 26 17:06:09 mx1 p[2]x: y",
            "Nov",
            "",
        ] {
            let fast = bsd_fields(line);
            if fast.is_some() {
                assert_eq!(fast, by_pattern(line), "{line:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// Wherever the reader answers, it answers as the pattern does; on the lines Postfix
        /// writes it always answers.
        #[test]
        fn never_disagrees_with_the_pattern(
            month in "[A-Za-z]{3}|N[a-z]{1,3}",
            pad in " {0,3}",
            day in "[0-9]{0,3}",
            hms in "[0-9:]{7,9}",
            host in "[a-z0-9\\-\\.\t\u{e9}]{0,8}",
            program in "[a-z/\\[\\]:\u{a0}]{0,10}",
            pid in "(\\[[0-9a]{0,4}\\])?",
            sep in ":|: |;|:  ",
            msg in ".{0,20}",
        ) {
            let line = format!("{month}{pad}{day} {hms} {host} {program}{pid}{sep}{msg}");
            if let Some(fast) = bsd_fields(&line) {
                prop_assert_eq!(Some(fast), by_pattern(&line), "{:?}", line);
            }
        }

        #[test]
        fn reads_every_well_formed_header(
            day in 1u32..=31, h in 0u32..24, m in 0u32..60, s in 0u32..60,
            host in "[a-z][a-z0-9.\\-]{0,12}",
            program in "[a-z][a-z/]{0,14}",
            pid in proptest::option::of(1u32..4_000_000),
            msg in "[ -~]{0,40}",
        ) {
            let pid_text = pid.map(|p| format!("[{p}]")).unwrap_or_default();
            let line = format!("Nov {day:>2} {h:02}:{m:02}:{s:02} {host} {program}{pid_text}: {msg}");
            prop_assert!(bsd_fields(&line).is_some(), "{:?}", line);
            prop_assert_eq!(bsd_fields(&line), by_pattern(&line));
        }
    }
}
