//! OpenAI's rate-limit headers: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` on every
//! response that passed through the limits, and `Retry-After` (whole seconds, at least 1) plus
//! `retry-after-ms` on a refusal.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

/// One bucket's state after a request: its per-minute limit, what is left (never shown below
/// zero) and how long until it is full again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketStatus {
    pub limit: u64,
    pub remaining: i64,
    pub reset_ms: u64,
}

impl BucketStatus {
    /// The more constrained of two: less left, then the lower limit.
    pub fn tighter(self, other: BucketStatus) -> BucketStatus {
        if (other.remaining, other.limit) < (self.remaining, self.limit) {
            other
        } else {
            self
        }
    }
}

static LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
static REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
static RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
static LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
static REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
static RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");
static RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");

/// Sets the request and token headers from the most constrained scope of each.
pub fn set_rate_headers(
    headers: &mut HeaderMap,
    requests: Option<BucketStatus>,
    tokens: Option<BucketStatus>,
) {
    let names = [
        (
            requests,
            [&LIMIT_REQUESTS, &REMAINING_REQUESTS, &RESET_REQUESTS],
        ),
        (tokens, [&LIMIT_TOKENS, &REMAINING_TOKENS, &RESET_TOKENS]),
    ];
    for (status, [limit, remaining, reset]) in names {
        let Some(status) = status else { continue };
        headers.insert(limit.clone(), HeaderValue::from(status.limit));
        headers.insert(
            remaining.clone(),
            HeaderValue::from(status.remaining.max(0)),
        );
        let reset_text = openai_duration(Duration::from_millis(status.reset_ms));
        if let Ok(value) = HeaderValue::from_str(&reset_text) {
            headers.insert(reset.clone(), value);
        }
    }
}

/// `Retry-After` in whole seconds (rounded up, at least 1: a zero invites an immediate retry)
/// and the exact wait in `retry-after-ms`, which OpenAI's SDKs read first.
pub fn set_retry_after(headers: &mut HeaderMap, wait: Duration) {
    headers.insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs(wait)),
    );
    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
    headers.insert(RETRY_AFTER_MS.clone(), HeaderValue::from(ms));
}

pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// A duration as OpenAI writes its resets (Go's `time.Duration` format, to the millisecond):
/// `20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn openai_duration(d: Duration) -> String {
    use std::fmt::Write;
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    // Written into one buffer: this runs for every response that went through the limits.
    let mut out = String::with_capacity(16);
    if ms < 1_000 {
        let _ = if ms == 0 {
            write!(out, "0s")
        } else {
            write!(out, "{ms}ms")
        };
        return out;
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let secs = ms / 1_000 % 60;
    let frac = ms % 1_000;
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{secs}");
    if frac > 0 {
        // Milliseconds without trailing zeros: .5, .25, .125.
        let (mut digits, mut width) = (frac, 3);
        while digits % 10 == 0 {
            digits /= 10;
            width -= 1;
        }
        let _ = write!(out, ".{digits:0width$}");
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_openai_s() {
        let ms = |n| openai_duration(Duration::from_millis(n));
        assert_eq!(ms(0), "0s");
        assert_eq!(ms(20), "20ms");
        assert_eq!(ms(999), "999ms");
        assert_eq!(ms(1_000), "1s");
        assert_eq!(ms(1_500), "1.5s");
        assert_eq!(ms(2_880), "2.88s");
        assert_eq!(ms(1_005), "1.005s");
        assert_eq!(ms(59_000), "59s");
        assert_eq!(ms(60_000), "1m0s");
        assert_eq!(ms(360_000), "6m0s");
        assert_eq!(ms(361_250), "6m1.25s");
        assert_eq!(ms(3_600_000), "1h0m0s");
        assert_eq!(ms(3_723_000), "1h2m3s");
        // Sub-millisecond parts are dropped.
        assert_eq!(openai_duration(Duration::from_micros(20_900)), "20ms");
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1_000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(20)), 20);
    }

    #[test]
    fn headers_show_remaining_never_below_zero() {
        let mut h = HeaderMap::new();
        let requests = BucketStatus {
            limit: 3,
            remaining: 2,
            reset_ms: 20_000,
        };
        let tokens = BucketStatus {
            limit: 1_000,
            remaining: -40,
            reset_ms: 62_400,
        };
        set_rate_headers(&mut h, Some(requests), Some(tokens));
        assert_eq!(h["x-ratelimit-limit-requests"], "3");
        assert_eq!(h["x-ratelimit-remaining-requests"], "2");
        assert_eq!(h["x-ratelimit-reset-requests"], "20s");
        assert_eq!(h["x-ratelimit-limit-tokens"], "1000");
        assert_eq!(h["x-ratelimit-remaining-tokens"], "0");
        assert_eq!(h["x-ratelimit-reset-tokens"], "1m2.4s");
        set_retry_after(&mut h, Duration::from_millis(19_001));
        assert_eq!(h["retry-after"], "20");
        assert_eq!(h["retry-after-ms"], "19001");
    }

    #[test]
    fn the_tighter_status_has_less_left() {
        let a = BucketStatus {
            limit: 10,
            remaining: 5,
            reset_ms: 0,
        };
        let b = BucketStatus {
            limit: 100,
            remaining: 4,
            reset_ms: 0,
        };
        assert_eq!(a.tighter(b), b);
        assert_eq!(b.tighter(a), b);
    }
}
