//! Incremental server-sent-events decoding: bytes arrive in whatever pieces the network made,
//! events leave whole, one at a time, as soon as their closing blank line is in.
//!
//! Lines end in `\n` or `\r\n` (what Anthropic and Google send); `id:` and `retry:` fields and
//! comment lines are skipped because no translated provider gives them meaning.

use crate::error::GatewayError;

/// One upstream event must fit in this much memory; a provider sending more is broken.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, empty when absent.
    pub event: &'a str,
    pub data: &'a str,
}

#[derive(Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no newline, so a long event arriving in many
    /// pieces is scanned once, not once per piece.
    scanned: usize,
    event: String,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// Feeds bytes and calls `on_event` for every event they complete.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut on_event: impl FnMut(SseEvent<'_>) -> Result<(), GatewayError>,
    ) -> Result<(), GatewayError> {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        let mut search_from = self.scanned;
        while let Some(offset) = memchr_newline(&self.pending[search_from..]) {
            let end = search_from + offset;
            let mut line = &self.pending[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            start = end + 1;
            search_from = start;
            if line.is_empty() {
                if self.has_data {
                    on_event(SseEvent {
                        event: &self.event,
                        data: &self.data,
                    })?;
                }
                self.event.clear();
                self.data.clear();
                self.has_data = false;
                continue;
            }
            let line = std::str::from_utf8(line).map_err(|_| {
                GatewayError::bad_gateway("The upstream sent an event stream that is not UTF-8.")
            })?;
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "event" => {
                    self.event.clear();
                    self.event.push_str(value);
                }
                "data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        self.pending.drain(..start);
        self.scanned = self.pending.len();
        if self.pending.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(GatewayError::bad_gateway(
                "The upstream sent an event larger than 16 MiB.",
            ));
        }
        Ok(())
    }

    /// Whether bytes of an unfinished event are still held (the upstream stopped mid-event).
    pub fn has_partial_event(&self) -> bool {
        self.has_data || !self.pending.iter().all(u8::is_ascii_whitespace)
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(pieces: &[&[u8]]) -> Vec<(String, String)> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for piece in pieces {
            decoder
                .feed(piece, |e| {
                    events.push((e.event.to_string(), e.data.to_string()));
                    Ok(())
                })
                .unwrap();
        }
        events
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream = b"event: message_start\ndata: {\"a\":1}\n\n: ping comment\n\ndata: x\r\ndata: y\r\n\r\n";
        let whole = decode(&[stream]);
        assert_eq!(
            whole,
            vec![
                ("message_start".into(), "{\"a\":1}".into()),
                (String::new(), "x\ny".into())
            ]
        );
        for cut in 1..stream.len() {
            assert_eq!(
                decode(&[&stream[..cut], &stream[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_partial_event_is_held_and_reported() {
        let mut decoder = SseDecoder::default();
        decoder.feed(b"data: {\"par", |_| Ok(())).unwrap();
        assert!(decoder.has_partial_event());
        let mut seen = 0;
        decoder
            .feed(b"tial\":1}\n\n", |e| {
                assert_eq!(e.data, "{\"partial\":1}");
                seen += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, 1);
        assert!(!decoder.has_partial_event());
    }
}
