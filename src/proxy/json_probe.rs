//! Reads only what routing needs from a JSON request body (the model, whether it streams, that
//! the required fields are there) without building a tree of the rest, and swaps the model name
//! in place when the upstream calls the model differently: the rest of the body is forwarded
//! byte for byte.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;
use crate::plugins::Route;

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    messages: Option<IgnoredAny>,
    input: Option<IgnoredAny>,
    stream: Option<bool>,
    // Raw: a malformed value is the upstream's to refuse, not a reason to fail the probe.
    #[serde(borrow)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow)]
    max_completion_tokens: Option<&'a RawValue>,
    // Kept whatever it holds, `null` included: a null left in place would win over the
    // member the gateway adds (the upstream reads the last duplicate) and turn usage off.
    #[serde(borrow, default, deserialize_with = "present")]
    stream_options: Option<&'a RawValue>,
}

/// Some(value) for a member that is there, even `null` (serde reads a null `Option` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue as Deserialize<'de>>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

fn count(raw: Option<&RawValue>) -> Option<u64> {
    raw.and_then(|v| v.get().parse().ok())
}

/// What the gateway learnt from a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRequest {
    pub model: String,
    pub stream: bool,
    /// `max_completion_tokens`, or the older `max_tokens`.
    pub max_output_tokens: Option<u64>,
    /// Where the model's JSON string literal sits in the body.
    pub model_span: Range<usize>,
    /// Where `stream_options`'s value sits, if the client sent one.
    pub stream_options_span: Option<Range<usize>>,
    /// Whether the client asked for the final usage chunk of a stream.
    pub include_usage: bool,
}

pub fn probe(body: &[u8], route: Route) -> Result<JsonRequest, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::bad_request(
            "The request body is empty; send a JSON object.",
        ));
    }
    let probe: Probe = serde_json::from_slice(body).map_err(|e| {
        GatewayError::bad_request(format!(
            "We could not parse the JSON body of your request ({e}). The body must be a JSON object."
        ))
    })?;
    let raw_model = probe.model.ok_or_else(|| {
        GatewayError::bad_request("You must provide a model parameter.").with_param("model")
    })?;
    let model: Cow<str> = serde_json::from_str(raw_model.get()).map_err(|_| {
        GatewayError::bad_request("The model parameter must be a string.").with_param("model")
    })?;
    if model.is_empty() {
        return Err(
            GatewayError::bad_request("You must provide a model parameter.").with_param("model"),
        );
    }
    match route {
        Route::ChatCompletions if probe.messages.is_none() => {
            return Err(
                GatewayError::bad_request("Missing required parameter: 'messages'.")
                    .with_param("messages"),
            )
        }
        Route::Embeddings if probe.input.is_none() => {
            return Err(
                GatewayError::bad_request("Missing required parameter: 'input'.")
                    .with_param("input"),
            )
        }
        _ => {}
    }
    // A raw value borrows from `body`, so its address gives its offset.
    let span = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        start..start + raw.get().len()
    };
    let include_usage = probe
        .stream_options
        .and_then(|raw| serde_json::from_str::<StreamOptions>(raw.get()).ok())
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    Ok(JsonRequest {
        model: model.into_owned(),
        stream: probe.stream.unwrap_or(false),
        max_output_tokens: count(probe.max_completion_tokens).or(count(probe.max_tokens)),
        model_span: span(raw_model),
        stream_options_span: probe.stream_options.map(span),
        include_usage,
    })
}

/// `body` with each span replaced by its bytes (spans in any order, not overlapping).
pub fn splice(body: &[u8], mut edits: Vec<(Range<usize>, Bytes)>) -> Bytes {
    edits.sort_by_key(|(span, _)| span.start);
    let added: usize = edits.iter().map(|(_, b)| b.len()).sum();
    let mut out = BytesMut::with_capacity(body.len() + added);
    let mut at = 0;
    for (span, bytes) in edits {
        out.extend_from_slice(&body[at..span.start]);
        out.extend_from_slice(&bytes);
        at = span.end;
    }
    out.extend_from_slice(&body[at..]);
    out.freeze()
}

/// The edit that makes a streamed chat request ask for its final usage chunk: a
/// `stream_options` member added after the opening brace, or the client's own options with
/// `include_usage` set (a value that is no object, `null` say, is replaced by one).
pub fn ask_for_usage(
    body: &[u8],
    stream_options: Option<&Range<usize>>,
) -> Option<(Range<usize>, Bytes)> {
    match stream_options {
        None => {
            let brace = body.iter().position(|&b| b == b'{')? + 1;
            Some((
                brace..brace,
                Bytes::from_static(br#""stream_options":{"include_usage":true},"#),
            ))
        }
        Some(span) => {
            let mut options: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&body[span.clone()]).unwrap_or_default();
            options.insert("include_usage".into(), serde_json::Value::Bool(true));
            let json = serde_json::to_vec(&options).ok()?;
            Some((span.clone(), Bytes::from(json)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_options_that_are_no_object_are_replaced() {
        for options in ["null", "false", "\"x\"", "[]", "3"] {
            let body = format!(
                r#"{{"model":"m","messages":[],"stream":true,"stream_options":{options}}}"#
            );
            let req = probe(body.as_bytes(), Route::ChatCompletions).unwrap();
            assert!(!req.include_usage, "{options}");
            let edit = ask_for_usage(body.as_bytes(), req.stream_options_span.as_ref()).unwrap();
            let out = splice(body.as_bytes(), vec![edit]);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(
                v["stream_options"],
                serde_json::json!({"include_usage": true})
            );
            assert_eq!(
                String::from_utf8_lossy(&out)
                    .matches("stream_options")
                    .count(),
                1,
                "{options}"
            );
        }
    }

    #[test]
    fn finds_model_and_stream() {
        let body =
            br#"{"messages":[{"role":"user","content":"hi"}],"model" : "gpt-4o","stream":true}"#;
        let req = probe(body, Route::ChatCompletions).unwrap();
        assert_eq!(req.model, "gpt-4o");
        assert!(req.stream);
        assert_eq!(&body[req.model_span.clone()], br#""gpt-4o""#);
    }

    #[test]
    fn replaces_only_the_model() {
        let body = Bytes::from_static(
            br#"{"model":"alias","messages":[],"x":{"model":"keep"},"logprobs":true}"#,
        );
        let req = probe(&body, Route::ChatCompletions).unwrap();
        let edit = (
            req.model_span.clone(),
            Bytes::from_static(br#""real-model""#),
        );
        let out = splice(&body, vec![edit]);
        assert_eq!(
            &out[..],
            br#"{"model":"real-model","messages":[],"x":{"model":"keep"},"logprobs":true}"#
        );
    }

    #[test]
    fn asks_for_usage_with_or_without_client_options() {
        let body = br#" {"model":"m","messages":[],"stream":true}"#;
        let req = probe(body, Route::ChatCompletions).unwrap();
        assert!(!req.include_usage);
        let edit = ask_for_usage(body, req.stream_options_span.as_ref()).unwrap();
        let out = splice(
            body,
            vec![
                edit,
                (req.model_span.clone(), Bytes::from_static(br#""up""#)),
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "up");

        let body = br#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_obfuscation":false}}"#;
        let req = probe(body, Route::ChatCompletions).unwrap();
        let edit = ask_for_usage(body, req.stream_options_span.as_ref()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&splice(body, vec![edit])).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["include_obfuscation"], false);

        let body =
            br#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#;
        assert!(probe(body, Route::ChatCompletions).unwrap().include_usage);
    }

    #[test]
    fn decodes_escaped_model_names() {
        let body = br#"{"model":"a\/b","input":"x"}"#;
        assert_eq!(probe(body, Route::Embeddings).unwrap().model, "a/b");
    }

    #[test]
    fn rejects_bad_bodies_with_the_parameter_named() {
        let cases: [(&[u8], Option<&str>); 7] = [
            (b"", None),
            (b"{not json", None),
            (b"[1,2]", None),
            (br#"{"messages":[]}"#, Some("model")),
            (br#"{"model":3,"messages":[]}"#, Some("model")),
            (br#"{"model":"m"}"#, Some("messages")),
            (br#"{"model":"m","messages":[],"stream":"yes"}"#, None),
        ];
        for (body, param) in cases {
            let err = probe(body, Route::ChatCompletions).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
            assert_eq!(
                err.param.as_deref(),
                param,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
