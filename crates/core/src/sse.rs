//! Incremental Server-Sent Events decoding and encoding over bytes.
//!
//! The decoder follows the WHATWG event-stream parsing rules: lines end in
//! `\n`, `\r\n` or `\r`; `data:` lines accumulate joined by `\n`; a blank line
//! dispatches the event; lines starting with `:` are comments; a single space
//! after the colon is stripped. Frames with no data lines are not dispatched.

use bytes::{Buf, BytesMut};

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseFrame {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE decoder: feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: BytesMut,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// The previous chunk ended in `\r`; a leading `\n` belongs to it.
    skip_lf: bool,
}

/// Upper bound on one buffered, unterminated line (a defence against an
/// upstream that never sends a newline).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// The decoder was fed a line longer than [`MAX_LINE`].
#[derive(Debug, thiserror::Error)]
#[error("SSE line exceeds {MAX_LINE} bytes")]
pub struct LineTooLong;

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; complete frames are pushed to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseFrame>) -> Result<(), LineTooLong> {
        let mut chunk = chunk;
        // A `\r` ended the last chunk: a `\n` starting this one belongs to
        // it. (An empty chunk decides nothing.)
        if self.skip_lf && !chunk.is_empty() {
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
            self.skip_lf = false;
        }
        self.buf.extend_from_slice(chunk);
        // Lines are read in place, as slices of the buffer; the consumed
        // part is dropped once at the end (splitting each line off would
        // make the buffer shared and cost an atomic per line).
        let buf = std::mem::take(&mut self.buf);
        let mut start = 0;
        while let Some(rel) = memchr::memchr2(b'\n', b'\r', &buf[start..]) {
            let end = start + rel;
            let mut next = end + 1;
            if buf[end] == b'\r' {
                match buf.get(next) {
                    None => self.skip_lf = true,
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                }
            }
            self.line(&buf[start..end], out);
            start = next;
        }
        self.buf = buf;
        self.buf.advance(start);
        if self.buf.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// End of input: dispatch nothing further (an unterminated final event is
    /// discarded per spec), but return whether bytes were left over.
    pub fn finish(&mut self) -> bool {
        let leftover = !self.buf.is_empty() || self.has_data;
        self.buf.clear();
        self.data.clear();
        self.has_data = false;
        self.event = None;
        leftover
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseFrame>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseFrame {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            } else {
                self.event = None;
            }
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        // Valid UTF-8 is the norm: borrow it; only broken bytes get replaced.
        let value = match std::str::from_utf8(value) {
            Ok(v) => std::borrow::Cow::Borrowed(v),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            // An event's data is bounded like a line (many short `data:`
            // lines must not grow it forever): the excess is dropped, and the
            // JSON it belonged to then fails to parse where it is used.
            b"data" if self.data.len() + value.len() > MAX_LINE => {}
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {}
        }
    }
}

/// Append one SSE event to `out`.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, data: &str) {
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// One `data:` event whose data is `v` as compact JSON, serialised straight
/// into `out` (compact JSON has no raw newline, so it is one `data:` line;
/// same bytes as `write_event(out, None, &json)`). `{}` if `v` cannot be
/// serialised.
pub fn write_json_event<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    out.extend_from_slice(b"data: ");
    let at = out.len();
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.truncate(at);
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_event_matches_write_event() {
        let v = serde_json::json!({"a": "line\nbreak", "b": [1, 2]});
        let mut a = Vec::new();
        write_json_event(&mut a, &v);
        let mut b = Vec::new();
        write_event(&mut b, None, &serde_json::to_string(&v).expect("json"));
        assert_eq!(a, b);
    }

    fn frames(chunks: &[&[u8]]) -> Vec<SseFrame> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out).expect("feed");
        }
        out
    }

    #[test]
    fn splits_across_chunks_and_line_endings() {
        let f = frames(&[
            b"event: a\r",
            b"\ndata: {\"x\"",
            b":1}\r\n\r\n: ping\n\ndata:2\rdata: 3\r\r",
        ]);
        assert_eq!(
            f,
            vec![
                SseFrame {
                    event: Some("a".into()),
                    data: "{\"x\":1}".into()
                },
                SseFrame {
                    event: None,
                    data: "2\n3".into()
                },
            ]
        );
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_frames() {
        let text: &[u8] = b"event: a\r\ndata: {\"x\":1}\r\n\r\n: ping\n\ndata:2\rdata: 3\r\r\
            data: caf\xc3\xa9\n\nevent: b\ndata: x\ndata:\n\n\r\n\rdata: last\r\n\r\n";
        let whole = frames(&[text]);
        assert_eq!(whole.len(), 5, "{whole:?}");
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let f = frames(&[&text[..i], &text[i..j], &text[j..]]);
                assert_eq!(f, whole, "split at {i} and {j}");
            }
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(frames(&bytes), whole);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert!(frames(&[b"event: x\n\n"]).is_empty());
    }

    #[test]
    fn roundtrip() {
        let mut out = Vec::new();
        write_event(
            &mut out,
            Some("message_stop"),
            "{\"type\":\"message_stop\"}",
        );
        assert_eq!(
            frames(&[&out]),
            vec![SseFrame {
                event: Some("message_stop".into()),
                data: "{\"type\":\"message_stop\"}".into()
            }]
        );
    }
}
