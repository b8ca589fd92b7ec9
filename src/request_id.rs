//! `x-request-id`: kept from the request when the client sent a sane one, made up otherwise, and
//! echoed on every response.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderValue};

use crate::providers::X_REQUEST_ID;

const MAX_LEN: usize = 128;

pub struct RequestIds {
    /// Random per process, so ids from several replicas do not collide.
    prefix: u32,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self {
            prefix: rand::random(),
            counter: AtomicU64::new(0),
        }
    }
}

impl RequestIds {
    /// The request's id, inserting a fresh one when it has none (or an unusable one).
    pub fn ensure(&self, headers: &mut HeaderMap) -> HeaderValue {
        if let Some(value) = headers.get(&X_REQUEST_ID) {
            if is_acceptable(value) {
                return value.clone();
            }
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // `req_` + 8 hex digits of the prefix + 12 of the counter, written by hand: this runs
        // for nearly every request, and `format!` cost more than the rest of this function.
        let mut id = *b"req_00000000000000000000";
        hex_digits(&mut id[4..12], u64::from(self.prefix));
        hex_digits(&mut id[12..], n);
        let value = HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("req_invalid"));
        headers.insert(X_REQUEST_ID.clone(), value.clone());
        value
    }
}

/// Writes the low digits of `value` in lower-case hex, filling `out` (wraps, like a counter).
fn hex_digits(out: &mut [u8], mut value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for digit in out.iter_mut().rev() {
        *digit = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
}

fn is_acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_good_ids_and_replaces_bad_ones() {
        let ids = RequestIds::default();
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(ids.ensure(&mut headers), "abc-123");

        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("has spaces"));
        let made = ids.ensure(&mut headers);
        assert!(made.to_str().unwrap().starts_with("req_"));
        assert_eq!(headers.get(&X_REQUEST_ID), Some(&made));

        let a = ids.ensure(&mut HeaderMap::new());
        let b = ids.ensure(&mut HeaderMap::new());
        assert_ne!(a, b);
    }

    #[test]
    fn made_ids_are_the_prefix_then_the_counter_in_hex() {
        let ids = RequestIds {
            prefix: 0xdead_beef,
            counter: AtomicU64::new(0x1_2345_6789_abcd),
        };
        assert_eq!(
            ids.ensure(&mut HeaderMap::new()),
            "req_deadbeef23456789abcd"
        );
        assert_eq!(
            ids.ensure(&mut HeaderMap::new()),
            "req_deadbeef23456789abce"
        );
    }
}
