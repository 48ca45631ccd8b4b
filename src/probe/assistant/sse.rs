//! A Server-Sent Events decoder (WHATWG HTML, "event stream interpretation") that is
//! linear in the bytes it is fed and bounded in memory.
//!
//! Hand-written on purpose: `eventsource-stream` re-parses its whole buffer on every read,
//! so one long line costs quadratic time (a 32 MB `data:` line took 1.69 s of CPU inside
//! one probe run) and it has no size cap (a 200 MB line held 211 MB). Here every byte is
//! looked at once, and a line or event over `max_event` bytes is an error.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; empty means the default type, "message".
    pub event: String,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub limit: usize,
}

pub struct Decoder {
    max_event: usize,
    /// The line being read (bytes after the last line break).
    line: Vec<u8>,
    event: String,
    data: String,
    /// Bytes of the event being built, field names and line breaks included.
    event_bytes: usize,
    /// The last chunk ended in CR: a leading LF in the next one belongs to it.
    after_cr: bool,
    started: bool,
}

impl Decoder {
    pub fn new(max_event: usize) -> Self {
        Decoder {
            max_event,
            line: Vec::new(),
            event: String::new(),
            data: String::new(),
            event_bytes: 0,
            after_cr: false,
            started: false,
        }
    }

    /// Feeds bytes; complete events are appended to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), TooLarge> {
        if !self.started && !chunk.is_empty() {
            self.started = true;
            chunk = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
        }
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while let Some(i) = chunk.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.grow(i)?;
            self.line.extend_from_slice(&chunk[..i]);
            let line = std::mem::take(&mut self.line);
            self.end_line(&line, out)?;
            self.line = line;
            self.line.clear();
            let crlf = chunk[i] == b'\r' && chunk.get(i + 1) == Some(&b'\n');
            if chunk[i] == b'\r' && i + 1 == chunk.len() {
                self.after_cr = true;
            }
            chunk = &chunk[i + if crlf { 2 } else { 1 }..];
        }
        self.grow(chunk.len())?;
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    fn grow(&mut self, n: usize) -> Result<(), TooLarge> {
        if self.event_bytes + self.line.len() + n > self.max_event {
            return Err(TooLarge { limit: self.max_event });
        }
        Ok(())
    }

    fn end_line(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), TooLarge> {
        if line.is_empty() {
            // A blank line dispatches; an event with no data is dropped (per the spec).
            if !self.data.is_empty() {
                self.data.pop(); // the trailing LF
                out.push(Event {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event.clear();
            self.data.clear();
            self.event_bytes = 0;
            return Ok(());
        }
        self.event_bytes += line.len() + 1;
        if line[0] == b':' {
            return Ok(()); // comment (keep-alive ping)
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
            }
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            _ => {} // id, retry and unknown fields do not matter to a probe
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(pieces: &[&[u8]], max: usize) -> Result<Vec<Event>, TooLarge> {
        let mut d = Decoder::new(max);
        let mut out = Vec::new();
        for p in pieces {
            d.feed(p, &mut out)?;
        }
        Ok(out)
    }

    fn ev(event: &str, data: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn spec_examples() {
        let wire = b"\xEF\xBB\xBF: comment\n\ndata: first\ndata:second\n\nevent: add\ndata\n\nid: 1\n\ndata: x\r\n\r\ndata: y\r\rdata: z";
        let want = vec![ev("", "first\nsecond"), ev("add", ""), ev("", "x"), ev("", "y")];
        // "data" with no colon is an empty data field: an event whose data is "";
        // an event with no data field ("id: 1") is not dispatched; "z" never ends.
        let got = decode(&[wire], 1 << 20).unwrap();
        assert_eq!(got, want);
        for cut in 1..wire.len() {
            assert_eq!(
                decode(&[&wire[..cut], &wire[cut..]], 1 << 20).unwrap(),
                got,
                "cut {cut}"
            );
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode(&bytes, 1 << 20).unwrap(), got);
    }

    #[test]
    fn long_lines_and_events_are_cut_at_the_limit() {
        let line = vec![b'a'; 5000];
        let e = decode(&[b"data: ", &line], 4096).unwrap_err();
        assert_eq!(e.limit, 4096);
        // Many short data lines with no blank line between them form one growing event.
        let many = b"data: x\n".repeat(1000);
        assert!(decode(&[&many], 4096).is_err());
        assert_eq!(decode(&[&many, b"\n"], 16384).unwrap().len(), 1);
        // A 64 MiB line in 64 KiB reads fails fast, holding no more than the limit.
        let chunk = vec![b'd'; 64 * 1024];
        let mut d = Decoder::new(1 << 20);
        let mut out = Vec::new();
        let fed = (0..1024).take_while(|_| d.feed(&chunk, &mut out).is_ok()).count();
        assert_eq!(fed, 16);
        assert!(d.line.capacity() <= 2 << 20);
    }
}
