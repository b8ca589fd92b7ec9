//! OpenAI chat completions <-> Anthropic's Messages API (`POST /v1/messages`).
//!
//! Requests: system/developer messages become the top-level `system`; tool calls and tool
//! results become `tool_use` / `tool_result` blocks; consecutive messages of one role merge,
//! since Anthropic wants the roles to alternate. Answers: content blocks become the message text
//! and `tool_calls`; in a stream, each `tool_use` block gets the next OpenAI tool-call index and
//! its `input_json_delta` fragments are passed on as argument deltas under that index.

use std::borrow::Cow;
use std::collections::HashMap;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::translate::openai::{
    self, completion_id, plain_text, unsupported, upstream_error, ChatRequest, ChunkWriter,
    Completion, Content, Conversation, FinishReason, Message, ResponseFormat, Role, ToolCallOut,
    ToolChoice, Usage, UserPart,
};
use crate::translate::sse::SseEvent;
use crate::translate::StreamTranslator;

pub const KIND: &str = "anthropic";

/// The API version sent unless the provider's `headers` name another.
pub const API_VERSION: &str = "2023-06-01";

/// Parameters accepted and ignored: Anthropic has nothing like them, and ignoring them changes
/// no answer (`seed` is only a best-effort hint at OpenAI too). The README lists them.
pub const DROPPED: &[&str] = &["seed", "store", "metadata", "service_tier"];

/// Thinking budgets for OpenAI's `reasoning_effort`.
fn thinking_budget(effort: &str) -> Option<Option<u64>> {
    match effort {
        "none" | "minimal" => Some(None),
        "low" => Some(Some(1024)),
        "medium" => Some(Some(4096)),
        "high" => Some(Some(16384)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Request

/// The Messages API body for `request`, sent to `model`. Anthropic requires `max_tokens`; when
/// the client gives none, `default_max_tokens` is used.
pub fn request_body(
    request: &ChatRequest,
    model: &str,
    default_max_tokens: u64,
) -> Result<Vec<u8>, GatewayError> {
    request.single_choice(KIND)?;
    let consumed: Vec<&str> = DROPPED
        .iter()
        .copied()
        .chain(["reasoning_effort"])
        .collect();
    request.check_other(KIND, &consumed)?;
    let effort = request.other.get("reasoning_effort");

    let (system, messages) = messages(&request.messages)?;
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    let mut max_tokens = request.max_output_tokens().unwrap_or(default_max_tokens);
    if let Some(effort) = effort.filter(|v| !v.is_null()) {
        let budget = effort.as_str().and_then(thinking_budget).ok_or_else(|| {
            unsupported(
                KIND,
                "reasoning_effort",
                "use none, minimal, low, medium or high",
            )
        })?;
        if let Some(budget) = budget {
            // The thinking budget is spent out of max_tokens; keep the client's room for text.
            max_tokens = max_tokens.saturating_add(budget);
            body.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
    }
    body.insert("max_tokens".into(), json!(max_tokens));
    if !system.is_empty() {
        body.insert("system".into(), json!(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(stop) = &request.stop {
        body.insert("stop_sequences".into(), json!(stop.sequences()));
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    if let Some(user) = &request.user {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(tools) = &request.tools {
        body.insert("tools".into(), Value::Array(self::tools(tools)?));
        if let Some(choice) = tool_choice(request)? {
            body.insert("tool_choice".into(), choice);
        }
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            return Err(unsupported(
                KIND,
                "response_format",
                "Anthropic has no schema-less JSON mode; use {\"type\": \"json_schema\"}",
            ))
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let schema = json_schema.schema.as_ref().ok_or_else(|| {
                GatewayError::bad_request("response_format.json_schema.schema is required.")
                    .with_param("response_format.json_schema.schema")
            })?;
            body.insert(
                "output_config".into(),
                json!({"format": {"type": "json_schema", "schema": schema}}),
            );
        }
    }
    serde_json::to_vec(&Value::Object(body))
        .map_err(|e| GatewayError::internal(format!("Could not write the request: {e}")))
}

/// The system prompt and the alternating user/assistant messages.
fn messages(input: &[Message]) -> Result<(String, Vec<Value>), GatewayError> {
    let mut conversation = Conversation::new();
    for (i, message) in input.iter().enumerate() {
        match message.role {
            Role::System | Role::Developer => {
                conversation.add_system(&plain_text(message.content.as_ref(), KIND)?)
            }
            Role::User => conversation.add("user", user_blocks(message.content.as_ref(), i)?),
            Role::Assistant => conversation.add("assistant", assistant_blocks(message, i)?),
            Role::Tool => {
                let id = message.tool_call_id.as_deref().ok_or_else(|| {
                    GatewayError::bad_request(format!(
                        "messages[{i}].tool_call_id is required in a tool message."
                    ))
                    .with_param(format!("messages[{i}].tool_call_id"))
                })?;
                let text = plain_text(message.content.as_ref(), KIND)?;
                let block = json!({"type": "tool_result", "tool_use_id": id, "content": text});
                conversation.add("user", vec![block]);
            }
        }
    }
    let messages = conversation
        .turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((conversation.system, messages))
}

fn user_blocks(content: Option<&Content>, i: usize) -> Result<Vec<Value>, GatewayError> {
    let blocks = openai::user_parts(content, i, KIND)?
        .into_iter()
        .map(|part| match part {
            UserPart::Text(text) => json!({"type": "text", "text": text}),
            UserPart::Inline(data) => {
                // PDFs are documents to Anthropic; everything else an image.
                let kind = if data.media_type == "application/pdf" {
                    "document"
                } else {
                    "image"
                };
                json!({
                    "type": kind,
                    "source": {"type": "base64", "media_type": data.media_type, "data": data.data}
                })
            }
            UserPart::Linked(url) => {
                json!({"type": "image", "source": {"type": "url", "url": url}})
            }
        })
        .collect();
    Ok(blocks)
}

fn assistant_blocks(message: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut blocks = Vec::new();
    let text = match &message.content {
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| p.text.as_deref())
            .collect::<Vec<_>>()
            .join("\n"),
        other => plain_text(other.as_ref(), KIND)?,
    };
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let arguments = call.function.arguments.trim();
        let input: Value = if arguments.is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments).map_err(|e| {
                let at = format!("messages[{i}].tool_calls[{j}].function.arguments");
                GatewayError::bad_request(format!("{at} is not valid JSON: {e}")).with_param(at)
            })?
        };
        blocks.push(json!({
            "type": "tool_use", "id": call.id, "name": call.function.name, "input": input
        }));
    }
    Ok(blocks)
}

fn tools(tools: &[openai::Tool]) -> Result<Vec<Value>, GatewayError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| match (&*tool.kind, &tool.function) {
            ("function", Some(f)) => {
                let schema = f
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                let mut out = json!({"name": f.name, "input_schema": schema});
                if let Some(description) = &f.description {
                    out["description"] = json!(description);
                }
                Ok(out)
            }
            (kind, _) => Err(unsupported(
                KIND,
                &format!("tools[{i}]"),
                &format!("only `function` tools can be translated, not `{kind}`"),
            )),
        })
        .collect()
}

fn tool_choice(request: &ChatRequest) -> Result<Option<Value>, GatewayError> {
    let mut choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            other => {
                return Err(GatewayError::bad_request(format!(
                    "tool_choice `{other}` is not one of none, auto, required."
                ))
                .with_param("tool_choice"))
            }
        }),
        Some(ToolChoice::Named { function }) => {
            Some(json!({"type": "tool", "name": function.name}))
        }
    };
    if request.parallel_tool_calls == Some(false) {
        let choice = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = json!(true);
        }
    }
    Ok(choice)
}

// ---------------------------------------------------------------------------------------------
// Response

#[derive(Deserialize, Default, Clone, Copy)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Later counts replace earlier ones: `message_delta` carries cumulative totals.
    fn update(&mut self, newer: &AnthropicUsage) {
        let fields = [
            (&mut self.input_tokens, newer.input_tokens),
            (&mut self.output_tokens, newer.output_tokens),
            (
                &mut self.cache_creation_input_tokens,
                newer.cache_creation_input_tokens,
            ),
            (
                &mut self.cache_read_input_tokens,
                newer.cache_read_input_tokens,
            ),
        ];
        for (mine, theirs) in fields {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
    }

    /// OpenAI counts cached and cache-writing input as prompt tokens too.
    fn to_openai(self) -> Usage {
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0));
        Usage::new(
            prompt,
            self.output_tokens.unwrap_or(0),
            self.cache_read_input_tokens,
            None,
        )
    }
}

fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

#[derive(Deserialize)]
struct MessageResponse<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Vec<ResponseBlock<'a>>,
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock<'a> {
    Text {
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    ToolUse {
        #[serde(borrow)]
        id: Cow<'a, str>,
        #[serde(borrow)]
        name: Cow<'a, str>,
        // A Value, not a RawValue: serde buffers tagged enums, which RawValue cannot pass.
        input: Option<Value>,
    },
    #[serde(other)]
    Other,
}

/// A 2xx Messages API answer as an OpenAI `chat.completion`.
pub fn response_body(body: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let message: MessageResponse = serde_json::from_slice(body).map_err(|e| {
        GatewayError::bad_gateway(format!("The provider's answer could not be read: {e}"))
    })?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            ResponseBlock::Text { text: t } => text.get_or_insert_with(String::new).push_str(&t),
            ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCallOut {
                id: id.into_owned(),
                name: name.into_owned(),
                arguments: input.map_or_else(|| "{}".to_string(), |v| v.to_string()),
            }),
            ResponseBlock::Other => {}
        }
    }
    let completion = Completion {
        id: message.id.into_owned(),
        model: message.model.into_owned(),
        text,
        tool_calls,
        finish_reason: finish_reason(message.stop_reason.as_deref()),
        usage: Some(message.usage.to_openai()),
    };
    Ok(completion.to_json())
}

#[derive(Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    error: ErrorBody<'a>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// The status Anthropic uses for each error type, for errors that arrive inside a stream.
fn error_status(kind: &str) -> StatusCode {
    match kind {
        "invalid_request_error" => StatusCode::BAD_REQUEST,
        "authentication_error" => StatusCode::UNAUTHORIZED,
        "permission_error" => StatusCode::FORBIDDEN,
        "not_found_error" => StatusCode::NOT_FOUND,
        "request_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "rate_limit_error" => StatusCode::TOO_MANY_REQUESTS,
        "timeout_error" => StatusCode::GATEWAY_TIMEOUT,
        "overloaded_error" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An Anthropic error answer in OpenAI's shape, keeping the upstream status.
pub fn error(status: StatusCode, body: &[u8]) -> GatewayError {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => upstream_error(
            status,
            format!(
                "Anthropic: {} ({})",
                envelope.error.message, envelope.error.kind
            ),
        ),
        Err(_) => upstream_error(
            status,
            format!(
                "Anthropic answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Stream

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent<'a> {
    MessageStart {
        #[serde(borrow)]
        message: StartMessage<'a>,
    },
    ContentBlockStart {
        index: u32,
        #[serde(borrow)]
        content_block: BlockStart<'a>,
    },
    ContentBlockDelta {
        index: u32,
        #[serde(borrow)]
        delta: BlockDelta<'a>,
    },
    MessageDelta {
        #[serde(borrow)]
        delta: MessageDelta<'a>,
        usage: Option<AnthropicUsage>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageStop,
    Error {
        #[serde(borrow)]
        error: ErrorBody<'a>,
    },
    /// `ping` and event types added later.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart<'a> {
    Text {
        #[serde(borrow, default)]
        text: Cow<'a, str>,
    },
    ToolUse {
        #[serde(borrow)]
        id: Cow<'a, str>,
        #[serde(borrow)]
        name: Cow<'a, str>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta<'a> {
    TextDelta {
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    InputJsonDelta {
        #[serde(borrow)]
        partial_json: Cow<'a, str>,
    },
    /// Thinking, signature and citation deltas have no OpenAI chunk.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDelta<'a> {
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

struct AnthropicStream {
    writer: ChunkWriter,
    /// Anthropic content-block index -> OpenAI tool-call index, and whether any argument
    /// text was sent for it (a tool without parameters streams none: it gets `{}`).
    tool_indexes: HashMap<u32, (u32, bool)>,
    usage: AnthropicUsage,
    finished: bool,
}

pub fn stream_translator(request: &ChatRequest, model: &str) -> Box<dyn StreamTranslator> {
    Box::new(AnthropicStream {
        writer: ChunkWriter::new(completion_id(), model, request.include_usage()),
        tool_indexes: HashMap::new(),
        usage: AnthropicUsage::default(),
        finished: false,
    })
}

impl StreamTranslator for AnthropicStream {
    fn event(&mut self, event: SseEvent<'_>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let event: StreamEvent = serde_json::from_str(event.data).map_err(|e| {
            GatewayError::bad_gateway(format!("The provider sent an unreadable event: {e}"))
        })?;
        match event {
            StreamEvent::MessageStart { message } => {
                self.writer
                    .identify(message.id.as_deref(), message.model.as_deref());
                self.usage.update(&message.usage);
                self.writer.role(out);
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                BlockStart::Text { text } => self.writer.text(out, &text),
                BlockStart::ToolUse { id, name } => {
                    let tool_index = self.tool_indexes.len() as u32;
                    self.tool_indexes.insert(index, (tool_index, false));
                    self.writer.tool_call_start(out, tool_index, &id, &name, "");
                }
                BlockStart::Other => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => self.writer.text(out, &text),
                BlockDelta::InputJsonDelta { partial_json } => {
                    let (tool_index, sent) =
                        self.tool_indexes.get_mut(&index).ok_or_else(|| {
                            GatewayError::bad_gateway(
                                "The provider sent tool input for a block it never started.",
                            )
                        })?;
                    *sent |= !partial_json.is_empty();
                    self.writer
                        .tool_call_arguments(out, *tool_index, &partial_json);
                }
                BlockDelta::Other => {}
            },
            StreamEvent::ContentBlockStop { index } => {
                if let Some((tool_index, false)) = self.tool_indexes.get(&index).copied() {
                    self.writer.tool_call_arguments(out, tool_index, "{}");
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    self.usage.update(&usage);
                }
                if let Some(reason) = delta.stop_reason {
                    self.writer.finish(out, finish_reason(Some(&reason)));
                }
            }
            StreamEvent::MessageStop => {
                self.finished = true;
                self.writer.usage(out, &self.usage.to_openai());
                ChunkWriter::done(out);
            }
            StreamEvent::Error { error } => {
                return Err(upstream_error(
                    error_status(&error.kind),
                    format!("Anthropic: {} ({})", error.message, error.kind),
                ))
            }
            StreamEvent::Other => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if self.finished {
            Ok(())
        } else {
            Err(GatewayError::bad_gateway(
                "The provider's stream ended before the message was complete.",
            ))
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
            .input_tokens
            .or(self.usage.output_tokens)
            .map(|_| self.usage.to_openai())
    }
}

/// The Anthropic adapter: requests and answers through the translation above.
pub struct AnthropicAdapter;

impl super::Adapter for AnthropicAdapter {
    fn name(&self) -> &'static str {
        KIND
    }

    fn auth_header(&self, api_key: &str) -> Option<(http::HeaderName, http::HeaderValue)> {
        super::adapter::key_header("x-api-key", api_key)
    }

    fn required_headers(&self) -> Vec<(http::HeaderName, http::HeaderValue)> {
        vec![(
            http::HeaderName::from_static("anthropic-version"),
            http::HeaderValue::from_static(API_VERSION),
        )]
    }

    fn chat_path(&self, _model: &str, _stream: bool) -> String {
        "/messages".to_string()
    }

    fn request_body(
        &self,
        chat: &ChatRequest,
        model: &str,
        default_max_tokens: u64,
    ) -> Result<Vec<u8>, GatewayError> {
        request_body(chat, model, default_max_tokens)
    }

    fn stream_translator(
        &self,
        chat: &ChatRequest,
        model: &str,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(stream_translator(chat, model))
    }

    fn answer(&self, body: &[u8], _model: &str) -> Result<Vec<u8>, GatewayError> {
        response_body(body)
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> GatewayError {
        error(status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::TranslatedStream;

    fn stream() -> TranslatedStream {
        let chat = ChatRequest::parse(br#"{"model":"m","messages":[],"stream":true}"#).unwrap();
        TranslatedStream::new(stream_translator(&chat, "claude"))
    }

    fn events(bytes: &[u8]) -> Vec<Value> {
        String::from_utf8_lossy(bytes)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn a_tool_call_without_arguments_streams_an_empty_object() {
        let mut translated = stream();
        let out = translated
            .push(
                br#"data: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":3}}}

data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"now","input":{}}}

data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}

data: {"type":"content_block_stop","index":0}

"#,
            )
            .unwrap();
        let arguments: String = events(&out)
            .iter()
            .filter_map(|e| {
                e["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(arguments, "{}");
    }

    #[test]
    fn chunks_before_an_error_event_in_the_same_read_are_kept() {
        let mut translated = stream();
        let err = translated
            .push(
                br#"data: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":3}}}

data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Once"}}

data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}

"#,
            )
            .unwrap_err();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        let partial = events(&translated.take_partial());
        assert_eq!(partial.len(), 2, "role chunk and the text");
        assert_eq!(partial[1]["choices"][0]["delta"]["content"], "Once");
    }

    #[test]
    fn malformed_answers_and_events_are_bad_gateway() {
        for body in [
            &b"not json"[..],
            br#"{"id":"m","model":"c","content":[{"type":"tool_use"}]}"#,
        ] {
            let err = response_body(body).unwrap_err();
            assert_eq!(
                err.status,
                StatusCode::BAD_GATEWAY,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let mut translated = stream();
        let err = translated
            .push(b"data: {\"type\":\"message_start\"\n\n")
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_GATEWAY);
        // Tool input for a block that never started.
        let mut translated = stream();
        let err = translated
            .push(br#"data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}}

"#)
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_GATEWAY);
        // The upstream closed before message_stop.
        let mut translated = stream();
        translated
            .push(
                br#"data: {"type":"message_start","message":{"id":"m","model":"c","usage":{}}}

"#,
            )
            .unwrap();
        assert_eq!(
            translated.end().unwrap_err().status,
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn a_huge_max_tokens_with_thinking_does_not_overflow() {
        let chat = ChatRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":18446744073709551615,"reasoning_effort":"low"}"#,
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&request_body(&chat, "c", 4096).unwrap()).unwrap();
        assert_eq!(body["max_tokens"], u64::MAX);
    }
}
