//! A streamed answer for an in-process caller: the very response body a /v1 client would read
//! (passed through, or translated from Anthropic/Gemini), decoded into typed chunks as its
//! frames arrive. Dropping the stream before its end is a client hang-up, reported to the plugins
//! like one.

use std::collections::VecDeque;

use axum::body::Body;
use http::StatusCode;
use http_body_util::BodyExt;

use crate::chat::ChatChunk;
use crate::error::GatewayError;
use crate::translate::sse::SseDecoder;

pub struct ChunkStream {
    body: Body,
    decoder: SseDecoder,
    ready: VecDeque<Result<ChatChunk, GatewayError>>,
    ended: bool,
}

impl ChunkStream {
    pub(crate) fn new(body: Body) -> Self {
        Self {
            body,
            decoder: SseDecoder::default(),
            ready: VecDeque::new(),
            ended: false,
        }
    }

    /// The next chunk; `None` after `[DONE]` or the end of the body. An error event (the
    /// upstream failed mid-stream) comes as one `Err` and ends the stream.
    pub async fn next(&mut self) -> Option<Result<ChatChunk, GatewayError>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                if item.is_err() {
                    self.finish();
                }
                return Some(item);
            }
            if self.ended {
                return None;
            }
            match self.body.frame().await {
                None => {
                    self.ended = true;
                    if self.decoder.has_partial_event() {
                        return Some(Err(GatewayError::bad_gateway(
                            "The stream ended in the middle of an event.",
                        )));
                    }
                }
                Some(Err(e)) => {
                    self.finish();
                    return Some(Err(GatewayError::bad_gateway(format!(
                        "The stream failed: {e}"
                    ))));
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let ready = &mut self.ready;
                    let mut done = false;
                    let fed = self.decoder.feed(&data, |event| {
                        if done {
                            return Ok(());
                        }
                        let text = event.data.trim();
                        if text == "[DONE]" {
                            done = true;
                            return Ok(());
                        }
                        let unreadable =
                            |e| GatewayError::bad_gateway(format!("An unreadable chunk: {e}"));
                        // Read as a value first: an error event (the gateway's own, or an
                        // upstream's passed through) is any object with an `error` key.
                        let item = match serde_json::from_str::<serde_json::Value>(text) {
                            Ok(value) if value.get("error").is_some() => {
                                Err(GatewayError::from_answer(
                                    StatusCode::BAD_GATEWAY,
                                    text.as_bytes(),
                                    None,
                                ))
                            }
                            Ok(value) => serde_json::from_value(value).map_err(unreadable),
                            Err(e) => Err(unreadable(e)),
                        };
                        ready.push_back(item);
                        Ok(())
                    });
                    if let Err(e) = fed {
                        self.ready.push_back(Err(e));
                    }
                    if done {
                        // Read to the end, so the response counts as complete, not abandoned.
                        while let Some(Ok(_)) = self.body.frame().await {}
                        self.ended = true;
                    }
                }
            }
        }
    }

    /// Everything that is left, gathered: the text of the first choice and the usage.
    pub async fn collect_text(
        mut self,
    ) -> Result<(String, Option<crate::usage::TokenUsage>), GatewayError> {
        let mut text = String::new();
        let mut usage = None;
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            text.push_str(chunk.text());
            if let Some(u) = chunk.token_usage() {
                usage = Some(u);
            }
        }
        Ok((text, usage))
    }

    fn finish(&mut self) {
        self.ended = true;
        self.ready.clear();
    }
}
