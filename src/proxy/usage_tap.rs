//! The metering tap: looks at a passed-through answer for its `usage`, without re-encoding it.
//!
//! - An SSE stream is watched event by event: the last event whose `usage` is an object gives
//!   the counts. When the gateway itself asked for that usage chunk (the client did not set
//!   `stream_options.include_usage`), the usage-only chunk is cut out of what the client gets;
//!   every other byte goes on as it came. Frames are passed on as they are unless a usage chunk
//!   has to be cut, or (only then) an event split across frames has to be held until it ends.
//! - A JSON answer keeps its chunks (shared, not copied) and reads `usage` at the end: the
//!   whole answer up to `PARSE_WHOLE_LIMIT`, past it only the last `TAIL_BYTES` or so (usage
//!   comes last), so a huge answer (embeddings of many inputs) is never held whole.

use bytes::{Bytes, BytesMut};
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::usage::{TokenUsage, UsageJson};

/// Answers larger than this are searched for `usage` near their end only.
const PARSE_WHOLE_LIMIT: usize = 256 * 1024;
/// Of a larger answer, at least this much of its end is kept, where `usage` is.
const TAIL_BYTES: usize = 64 * 1024;
/// An SSE event longer than this is not an OpenAI chunk: the tap stops looking (and holding)
/// rather than buffer an upstream that never ends its event. As in `translate::sse`.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

pub struct UsageTap {
    sse: bool,
    /// Cut the usage-only chunk out of the stream (the gateway asked for it, not the client).
    strip: bool,
    /// SSE: the incomplete event at the end of what has been seen.
    carry: BytesMut,
    /// JSON: the answer's chunks (past `PARSE_WHOLE_LIMIT`, only those of its tail).
    chunks: std::collections::VecDeque<Bytes>,
    kept: usize,
    /// JSON: the answer's whole length so far.
    seen: usize,
    pub usage: Option<TokenUsage>,
    /// SSE data events with content seen: one token each is the estimate when no usage comes.
    pub events: u64,
    /// An event outgrew `MAX_EVENT_BYTES`: everything passes through unread.
    gave_up: bool,
    /// SSE: the last frame seen (shared, not copied): after a hang-up it tells whether the
    /// answer had ended, so that only its usage chunk was still to come.
    last: Bytes,
}

impl UsageTap {
    pub fn new(sse: bool, strip: bool) -> Self {
        Self {
            sse,
            strip: strip && sse,
            carry: BytesMut::new(),
            chunks: std::collections::VecDeque::new(),
            kept: 0,
            seen: 0,
            usage: None,
            events: 0,
            gave_up: false,
            last: Bytes::new(),
        }
    }

    /// Whether the last event seen (or the part of one held back) carries a `finish_reason`:
    /// the answer is complete, only its usage can still come.
    pub fn answer_complete(&self) -> bool {
        self.sse && (has_finish_reason(&self.last) || has_finish_reason(&self.carry))
    }

    /// Looks at one frame of the answer; returns what the client gets (the frame itself unless
    /// a usage chunk is cut out or a split event is held back).
    pub fn frame(&mut self, data: Bytes) -> Bytes {
        if self.gave_up {
            return data;
        }
        if !self.sse {
            self.seen += data.len();
            self.kept += data.len();
            self.chunks.push_back(data.clone());
            // Past the whole-parse size, chunks wholly before the tail go.
            while self.seen > PARSE_WHOLE_LIMIT
                && self
                    .chunks
                    .front()
                    .is_some_and(|front| self.kept - front.len() >= TAIL_BYTES)
            {
                if let Some(front) = self.chunks.pop_front() {
                    self.kept -= front.len();
                }
            }
            return data;
        }
        self.last = data.clone();
        if self.carry.is_empty() {
            // The common case: the frame holds whole events, nothing to join.
            let end = complete_events_end(&data);
            let cut = self.scan(&data[..end]);
            if end < data.len() {
                self.carry.extend_from_slice(&data[end..]);
            }
            return self.output(data, end, cut);
        }
        if self.carry.len() + data.len() > MAX_EVENT_BYTES {
            return self.give_up(data);
        }
        if !data.contains(&b'\n') {
            // No line ends here, so no event either: hold it without rescanning the carry
            // (a long event in small frames would otherwise be scanned over and over).
            self.carry.extend_from_slice(&data);
            return if self.strip { Bytes::new() } else { data };
        }
        self.carry.extend_from_slice(&data);
        let joined = std::mem::take(&mut self.carry).freeze();
        let end = complete_events_end(&joined);
        let cut = self.scan(&joined[..end]);
        if end < joined.len() {
            self.carry.extend_from_slice(&joined[end..]);
        }
        if self.strip {
            return self.output(joined, end, cut);
        }
        // Looking only: the client gets this frame as it came.
        data
    }

    /// Stops looking at this answer: what was held back goes to the client with `data`, and
    /// the rest passes untouched (its usage, if any, goes unread and is estimated).
    fn give_up(&mut self, data: Bytes) -> Bytes {
        self.gave_up = true;
        let held = std::mem::take(&mut self.carry);
        if !self.strip || held.is_empty() {
            return data;
        }
        let mut out = held;
        out.extend_from_slice(&data);
        out.freeze()
    }

    /// What goes to the client from `bytes` whose complete events end at `end`.
    fn output(&self, bytes: Bytes, end: usize, cut: Option<std::ops::Range<usize>>) -> Bytes {
        if !self.strip {
            return bytes;
        }
        // Stripping holds a split event back until it is whole (it may be the usage chunk).
        let whole = bytes.slice(..end);
        match cut {
            None => whole,
            Some(range) => {
                let mut out = BytesMut::with_capacity(whole.len() - range.len());
                out.extend_from_slice(&whole[..range.start]);
                out.extend_from_slice(&whole[range.end..]);
                out.freeze()
            }
        }
    }

    /// Reads the complete events in `bytes`; returns the span of a usage-only chunk to cut.
    fn scan(&mut self, bytes: &[u8]) -> Option<std::ops::Range<usize>> {
        let mut cut = None;
        let mut start = 0;
        while start < bytes.len() {
            let len = event_len(&bytes[start..]).unwrap_or(bytes.len() - start);
            let event = &bytes[start..start + len];
            if let Some(data) = event_data(event) {
                match self.event(data) {
                    EventKind::UsageOnly if self.strip => cut = Some(start..start + len),
                    EventKind::Content => self.events += 1,
                    _ => {}
                }
            }
            start += len;
        }
        cut
    }

    fn event(&mut self, data: &[u8]) -> EventKind {
        if data == b"[DONE]" {
            return EventKind::Other;
        }
        if !has_usage_object(data) {
            return EventKind::Content;
        }
        #[derive(Deserialize)]
        struct Chunk {
            choices: Option<Vec<IgnoredAny>>,
            usage: Option<UsageJson>,
        }
        let Ok(chunk) = serde_json::from_slice::<Chunk>(data) else {
            return EventKind::Content;
        };
        if let Some(usage) = &chunk.usage {
            self.usage = Some(TokenUsage::from_usage_json(usage));
        }
        if chunk.choices.is_none_or(|c| c.is_empty()) {
            EventKind::UsageOnly
        } else {
            EventKind::Content
        }
    }

    /// The answer has ended: reads a JSON answer's usage; returns what a stripping SSE tap
    /// still held back (an unterminated last event).
    pub fn finish(&mut self) -> Bytes {
        if self.sse {
            return if self.strip {
                std::mem::take(&mut self.carry).freeze()
            } else {
                Bytes::new()
            };
        }
        let chunks = std::mem::take(&mut self.chunks);
        let body = match chunks.len() {
            0 => return Bytes::new(),
            1 => chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut joined = BytesMut::with_capacity(self.kept);
                for chunk in &chunks {
                    joined.extend_from_slice(chunk);
                }
                joined.freeze()
            }
        };
        self.usage = if self.seen <= PARSE_WHOLE_LIMIT {
            TokenUsage::from_answer(&body)
        } else {
            usage_near_end(&body)
        };
        Bytes::new()
    }
}

enum EventKind {
    Content,
    UsageOnly,
    Other,
}

/// Where the last complete event in `bytes` ends (0 when none is complete).
fn complete_events_end(bytes: &[u8]) -> usize {
    let mut end = 0;
    while let Some(len) = event_len(&bytes[end..]) {
        end += len;
    }
    end
}

/// The length of the first event in `bytes`, its blank line included, if it is complete.
fn event_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(pos) = bytes[i..].iter().position(|&b| b == b'\n') {
        let nl = i + pos;
        let rest = &bytes[nl + 1..];
        if rest.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// The `data:` payload of one event (its first data line; OpenAI-compatible servers send one).
fn event_data(event: &[u8]) -> Option<&[u8]> {
    event.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let data = line.strip_prefix(b"data:")?;
        Some(data.strip_prefix(b" ").unwrap_or(data))
    })
}

/// Whether the chunk has `"usage":` followed by an object (not `null`), checked without parsing.
fn has_usage_object(data: &[u8]) -> bool {
    member_starts_with(data, b"\"usage\"", b'{')
}

/// Whether `data` has `"finish_reason":` followed by a string (not `null`).
fn has_finish_reason(data: &[u8]) -> bool {
    member_starts_with(data, b"\"finish_reason\"", b'"')
}

/// Whether some `key` (a quoted name) in `data` is followed by `:` and a value starting with
/// `first`.
fn member_starts_with(data: &[u8], key: &[u8], first: u8) -> bool {
    let mut from = 0;
    while let Some(pos) = find(&data[from..], key) {
        let after = &data[from + pos + key.len()..];
        let mut rest = after.iter().skip_while(|b| b.is_ascii_whitespace());
        if rest.next() == Some(&b':') && rest.find(|b| !b.is_ascii_whitespace()) == Some(&first) {
            return true;
        }
        from += pos + key.len();
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A large answer (embeddings): its top-level `usage` comes last, so read the object after the
/// last `"usage":` key.
fn usage_near_end(body: &[u8]) -> Option<TokenUsage> {
    const KEY: &[u8] = b"\"usage\"";
    let pos = body.windows(KEY.len()).rposition(|w| w == KEY)?;
    let after = &body[pos + KEY.len()..];
    let colon = after.iter().position(|&b| b == b':')?;
    let value = &after[colon + 1..];
    let mut values = serde_json::Deserializer::from_slice(value).into_iter::<UsageJson>();
    let usage = values.next()?.ok()?;
    Some(TokenUsage::from_usage_json(&usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn run(tap: &mut UsageTap, frames: &[&str]) -> String {
        let mut out = Vec::new();
        for f in frames {
            out.extend_from_slice(&tap.frame(Bytes::copy_from_slice(f.as_bytes())));
        }
        out.extend_from_slice(&tap.finish());
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn an_event_that_never_ends_is_passed_on_not_buffered() {
        let mut tap = UsageTap::new(true, true);
        let mut sent = CHUNK.len() + 6;
        let mut got = tap.frame(Bytes::from(format!("{CHUNK}data: "))).len();
        let piece = Bytes::from(vec![b'x'; 1024 * 1024]);
        for _ in 0..20 {
            sent += piece.len();
            got += tap.frame(piece.clone()).len();
            assert!(
                tap.carry.len() <= MAX_EVENT_BYTES,
                "held {}",
                tap.carry.len()
            );
        }
        got += tap.finish().len();
        assert!(tap.gave_up);
        assert_eq!(got, sent, "every byte reaches the client");
        assert_eq!(tap.events, 1);
    }

    #[test]
    fn looks_without_touching() {
        let mut tap = UsageTap::new(true, false);
        let all = format!("{CHUNK}{CHUNK}{USAGE}{DONE}");
        let out = run(&mut tap, &[&all]);
        assert_eq!(out, all);
        let usage = tap.usage.expect("usage");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (7, 2));
        assert_eq!(tap.events, 2);
    }

    #[test]
    fn strips_the_usage_chunk_it_asked_for() {
        let mut tap = UsageTap::new(true, true);
        let out = run(&mut tap, &[CHUNK, CHUNK, USAGE, DONE]);
        assert_eq!(out, format!("{CHUNK}{CHUNK}{DONE}"));
        assert_eq!(tap.usage.expect("usage").completion_tokens, 2);
    }

    #[test]
    fn events_split_across_frames_at_every_byte() {
        let all = format!("{CHUNK}{USAGE}{DONE}");
        for strip in [false, true] {
            for cut in 1..all.len() {
                let mut tap = UsageTap::new(true, strip);
                let out = run(&mut tap, &[&all[..cut], &all[cut..]]);
                let expected = if strip {
                    format!("{CHUNK}{DONE}")
                } else {
                    all.clone()
                };
                assert_eq!(out, expected, "cut at {cut}, strip {strip}");
                assert_eq!(tap.usage.expect("usage").prompt_tokens, 7, "cut at {cut}");
            }
        }
    }

    #[test]
    fn crlf_events_and_usage_in_content_text() {
        let mut tap = UsageTap::new(true, true);
        let text = "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\": {x}\"}}]}\r\n\r\n";
        let out = run(&mut tap, &[text, DONE]);
        assert_eq!(out, format!("{text}{DONE}"));
        assert_eq!(tap.usage, None);
        assert_eq!(tap.events, 1);
    }

    #[test]
    fn json_answers_small_and_large() {
        let mut tap = UsageTap::new(false, true);
        let body = r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let out = run(&mut tap, &[&body[..10], &body[10..]]);
        assert_eq!(out, body);
        assert_eq!(tap.usage.expect("usage").completion_tokens, 4);

        let big = format!(
            "{{\"data\":[{{\"embedding\":[{}]}}],\"usage\":{{\"prompt_tokens\":11,\"total_tokens\":11}}}}",
            vec!["0.125"; 100_000].join(",")
        );
        let mut tap = UsageTap::new(false, false);
        run(&mut tap, &[&big]);
        assert_eq!(tap.usage.expect("usage").prompt_tokens, 11);

        // In many frames: only a tail is held, and the usage is still found.
        let frames: Vec<&str> = (0..big.len())
            .step_by(4096)
            .map(|at| &big[at..(at + 4096).min(big.len())])
            .collect();
        let mut tap = UsageTap::new(false, false);
        for frame in &frames {
            tap.frame(Bytes::copy_from_slice(frame.as_bytes()));
            assert!(
                tap.kept <= PARSE_WHOLE_LIMIT.max(TAIL_BYTES + 4096),
                "{}",
                tap.kept
            );
        }
        tap.finish();
        assert_eq!(tap.usage.expect("usage").prompt_tokens, 11);
    }
}
