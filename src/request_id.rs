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
        let id = format!("req_{:08x}{n:012x}", self.prefix);
        let value = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("req_invalid"));
        headers.insert(X_REQUEST_ID.clone(), value.clone());
        value
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
}
