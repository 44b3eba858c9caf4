//! Reading the Postfix policy delegation protocol's requests: `name=value` lines, each ended by
//! a newline, the request ended by an empty line, at most [`MAX_REQUEST`] bytes. Pure, so the
//! policy service's reading can be tested and fuzzed apart from its sockets.

use std::collections::HashMap;

/// Largest request accepted (Postfix's requests are about 1 KiB).
pub const MAX_REQUEST: usize = 16 * 1024;

/// One request being read, line by line.
#[derive(Debug, Default)]
pub struct RequestReader {
    attrs: HashMap<String, String>,
    size: usize,
}

impl RequestReader {
    /// How many more bytes the request may take (read at most this plus one).
    pub fn room(&self) -> usize {
        MAX_REQUEST - self.size
    }

    /// Takes one line as read, with its newline. `Ok(Some(attrs))` once the request is whole
    /// (the reader is then ready for the next); `Err` for a request the protocol refuses
    /// (oversized, unterminated, empty, a line without `=`): the connection is to be closed.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<HashMap<String, String>>, String> {
        self.size += line.len();
        if self.size > MAX_REQUEST || !line.ends_with(b"\n") {
            return Err(format!("request larger than {MAX_REQUEST} bytes"));
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            if self.attrs.is_empty() {
                return Err("empty request".into());
            }
            self.size = 0;
            return Ok(Some(std::mem::take(&mut self.attrs)));
        }
        let Some((k, v)) = text.split_once('=') else {
            return Err(format!(
                "malformed attribute line {:?}",
                text.chars().take(40).collect::<String>()
            ));
        };
        self.attrs.insert(k.to_string(), v.to_string());
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_end_at_an_empty_line_and_bad_ones_are_refused() {
        let mut r = RequestReader::default();
        assert_eq!(r.push_line(b"request=smtpd_access_policy\n"), Ok(None));
        assert_eq!(r.push_line(b"client_address=192.0.2.7\r\n"), Ok(None));
        let attrs = r.push_line(b"\n").unwrap().unwrap();
        assert_eq!(attrs["client_address"], "192.0.2.7");
        assert_eq!(r.room(), MAX_REQUEST, "ready for the next request");
        assert!(r.push_line(b"\n").unwrap_err().contains("empty"));
        assert!(RequestReader::default()
            .push_line(b"no equals sign\n")
            .is_err());
        assert!(
            RequestReader::default().push_line(b"a=b").is_err(),
            "unterminated"
        );
        let big = vec![b'x'; MAX_REQUEST + 1];
        assert!(RequestReader::default().push_line(&big).is_err());
    }
}
