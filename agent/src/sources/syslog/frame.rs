//! Syslog over TCP: messages framed by octet counting (`LEN SP MSG`, RFC 6587 §3.4.1, what
//! rsyslog's `TCP_Framing="octet-counted"` sends) or by a newline (§3.4.2, the traditional
//! framing), told apart per message by its first byte, as rsyslog's own receiver does.

/// Most bytes one message may have; a longer one is an error and ends the connection.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Why a TCP stream's framing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    TooLong(usize),
    BadLength(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLong(n) => write!(f, "a message of {n} bytes (at most {MAX_MESSAGE})"),
            FrameError::BadLength(s) => write!(f, "malformed octet count {s:?}"),
        }
    }
}

/// Splits one TCP stream's bytes into messages.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// Adds `bytes`; returns the messages now complete, or the framing error.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, FrameError> {
        self.buf.extend_from_slice(bytes);
        let mut out = vec![];
        loop {
            let start = self
                .buf
                .iter()
                .position(|b| !matches!(b, b'\n' | b'\r' | b' '));
            let Some(start) = start else {
                self.buf.clear();
                return Ok(out);
            };
            self.buf.drain(..start);
            if self.buf[0].is_ascii_digit() {
                // Octet counting: digits, one space, then exactly that many bytes.
                let Some(sp) = self.buf.iter().position(|b| *b == b' ') else {
                    if self.buf.len() > 10 {
                        return Err(FrameError::BadLength(lossy(&self.buf[..10])));
                    }
                    return Ok(out);
                };
                let digits = &self.buf[..sp];
                let n: usize = std::str::from_utf8(digits)
                    .ok()
                    .filter(|d| d.len() <= 10 && d.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(|| FrameError::BadLength(lossy(digits)))?;
                if n > MAX_MESSAGE {
                    return Err(FrameError::TooLong(n));
                }
                if self.buf.len() < sp + 1 + n {
                    return Ok(out);
                }
                out.push(lossy(&self.buf[sp + 1..sp + 1 + n]));
                self.buf.drain(..sp + 1 + n);
            } else {
                let Some(nl) = self.buf.iter().position(|b| *b == b'\n') else {
                    if self.buf.len() > MAX_MESSAGE {
                        return Err(FrameError::TooLong(self.buf.len()));
                    }
                    return Ok(out);
                };
                out.push(lossy(&self.buf[..nl]));
                self.buf.drain(..=nl);
            }
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches(['\r', '\n'])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_counted_and_newline_framing_split_anywhere() {
        let a = "<22>Nov 26 17:06:09 mx1 postfix/smtpd[1]: connect from x[192.0.2.1]";
        let b = "<22>1 2026-11-26T17:06:09Z mx2 postfix/smtpd 2 - - quit";
        let stream = format!("{} {a}{} {b}{a}\n{b}\n", a.len(), b.len());
        // Every split point gives the same four messages.
        for cut in 0..stream.len() {
            let mut f = Framer::default();
            let mut got = f.push(&stream.as_bytes()[..cut]).unwrap();
            got.extend(f.push(&stream.as_bytes()[cut..]).unwrap());
            assert_eq!(got, vec![a, b, a, b], "cut at {cut}");
        }
    }

    #[test]
    fn bad_counts_and_huge_messages_are_errors() {
        assert!(matches!(
            Framer::default().push(b"12x4 <22>hello"),
            Err(FrameError::BadLength(_))
        ));
        assert!(matches!(
            Framer::default().push(b"99999999 x"),
            Err(FrameError::TooLong(99_999_999))
        ));
        let long = vec![b'a'; MAX_MESSAGE + 1];
        assert!(matches!(
            Framer::default().push(&long),
            Err(FrameError::TooLong(_))
        ));
        // A message cut short waits for the rest.
        assert_eq!(
            Framer::default().push(b"20 <22>short").unwrap(),
            Vec::<String>::new()
        );
    }
}
