//! OpenAI chat completions <-> Google's Gemini API (v1beta `generateContent` and
//! `streamGenerateContent?alt=sse`).
//!
//! Requests: system/developer messages become `systemInstruction`; assistant turns become `model`
//! contents; tool calls and tool results become `functionCall` / `functionResponse` parts;
//! consecutive contents of one role merge, since Gemini wants user and model to alternate.
//! Answers: the first candidate's parts become the text and `tool_calls` (thought summaries are
//! left out). A stream is a series of whole `GenerateContentResponse`s, each translated as it
//! arrives; function calls come whole, so each one is a single tool-call chunk.

use std::borrow::Cow;
use std::collections::HashMap;

use http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::translate::openai::{
    self, completion_id, plain_text, unsupported, upstream_error, ChatRequest, ChunkWriter,
    Completion, Content, Conversation, FinishReason, Message, ResponseFormat, Role, ToolCallOut,
    ToolChoice, Usage, UserPart,
};
use crate::translate::sse::SseEvent;
use crate::translate::StreamTranslator;

pub const KIND: &str = "gemini";

/// Parameters accepted and ignored: Gemini has nothing like them, and ignoring them changes no
/// answer. The typed `user` (Gemini has no end-user field) and `parallel_tool_calls` (Gemini has
/// no switch for it) are ignored too. The README lists them.
pub const DROPPED: &[&str] = &["store", "metadata", "service_tier"];

/// Parameters outside `ChatRequest`'s typed fields that this translator maps.
const CONSUMED: &[&str] = &[
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "reasoning_effort",
];

/// Google's documented stand-in signature for function calls whose real `thoughtSignature` is
/// not at hand: OpenAI's history has no place to carry it, and Gemini 3 answers 400 when a
/// function call of the current turn comes back without one.
const FOREIGN_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

pub fn endpoint_path(model: &str, stream: bool) -> String {
    if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    }
}

/// Thinking budgets for OpenAI's `reasoning_effort`.
fn thinking_budget(effort: &str) -> Option<u64> {
    match effort {
        "none" | "minimal" => Some(0),
        "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(24576),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Request

/// The `GenerateContentRequest` body for `request` (the model is named in the URL).
pub fn request_body(request: &ChatRequest) -> Result<Vec<u8>, GatewayError> {
    request.single_choice(KIND)?;
    let allowed: Vec<&str> = DROPPED.iter().chain(CONSUMED).copied().collect();
    request.check_other(KIND, &allowed)?;

    let (system, contents) = contents(&request.messages)?;
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({ "parts": [{ "text": system }] }),
        );
    }
    if let Some(tools) = request.tools.as_deref().filter(|t| !t.is_empty()) {
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": function_declarations(tools)? }]),
        );
        if let Some(config) = tool_config(request)? {
            body.insert("toolConfig".into(), config);
        }
    }
    let config = generation_config(request)?;
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    serde_json::to_vec(&Value::Object(body))
        .map_err(|e| GatewayError::internal(format!("Could not write the request: {e}")))
}

/// The system instruction and the alternating user/model contents.
fn contents(input: &[Message]) -> Result<(String, Vec<Value>), GatewayError> {
    let mut conversation = Conversation::new();
    // tool_call_id -> function name, from earlier assistant messages: a functionResponse is
    // matched to its call by name.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, message) in input.iter().enumerate() {
        match message.role {
            Role::System | Role::Developer => {
                conversation.add_system(&plain_text(message.content.as_ref(), KIND)?)
            }
            Role::User => conversation.add("user", user_parts(message.content.as_ref(), i)?),
            Role::Assistant => {
                for call in message.tool_calls.iter().flatten() {
                    call_names.insert(&call.id, &call.function.name);
                }
                conversation.add("model", model_parts(message, i)?);
            }
            Role::Tool => {
                conversation.add("user", vec![function_response(message, i, &call_names)?])
            }
        }
    }
    let contents = conversation
        .turns
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect();
    Ok((conversation.system, contents))
}

fn user_parts(content: Option<&Content>, i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut out = Vec::new();
    for part in openai::user_parts(content, i, KIND)? {
        match part {
            UserPart::Text(text) => out.extend(text_part(text)),
            UserPart::Inline(data) => out.push(json!({
                "inlineData": { "mimeType": data.media_type, "data": data.data }
            })),
            UserPart::Linked(url) => out.push(json!({
                "fileData": { "mimeType": openai::media_type_from_url(url), "fileUri": url }
            })),
        }
    }
    Ok(out)
}

/// Gemini refuses empty text parts, so an empty message contributes none.
fn text_part(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "text": text }))
}

fn model_parts(message: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
    // Assistant parts may be `refusal` as well as `text`; only the text is history worth sending.
    let text = match &message.content {
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| p.text.as_deref())
            .collect::<Vec<_>>()
            .join("\n"),
        other => plain_text(other.as_ref(), KIND)?,
    };
    let mut parts: Vec<Value> = text_part(&text).into_iter().collect();
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let arguments = call.function.arguments.trim();
        let args = if arguments.is_empty() {
            Value::Object(Map::new())
        } else {
            let at = format!("messages[{i}].tool_calls[{j}].function.arguments");
            match serde_json::from_str(arguments) {
                Ok(Value::Object(args)) => Value::Object(args),
                Ok(_) => {
                    return Err(
                        GatewayError::bad_request(format!("{at} must be a JSON object."))
                            .with_param(at),
                    )
                }
                Err(e) => {
                    return Err(
                        GatewayError::bad_request(format!("{at} is not valid JSON: {e}"))
                            .with_param(at),
                    )
                }
            }
        };
        parts.push(json!({
            "functionCall": { "name": call.function.name, "args": args },
            "thoughtSignature": FOREIGN_THOUGHT_SIGNATURE,
        }));
    }
    Ok(parts)
}

fn function_response(
    message: &Message,
    i: usize,
    call_names: &HashMap<&str, &str>,
) -> Result<Value, GatewayError> {
    let at = || format!("messages[{i}].tool_call_id");
    let id = message.tool_call_id.as_deref().ok_or_else(|| {
        GatewayError::bad_request(format!("{} is required in a tool message.", at()))
            .with_param(at())
    })?;
    let name = call_names.get(id).ok_or_else(|| {
        GatewayError::bad_request(format!(
            "{}: `{id}` matches no tool call of an earlier assistant message.",
            at()
        ))
        .with_param(at())
    })?;
    let text = plain_text(message.content.as_ref(), KIND)?;
    // Gemini wants the result as an object: a JSON object result goes as is, anything else is
    // wrapped.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => json!({ "content": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

fn function_declarations(tools: &[openai::Tool]) -> Result<Vec<Value>, GatewayError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| match (tool.kind.as_str(), &tool.function) {
            ("function", Some(f)) => {
                let mut declaration = Map::new();
                declaration.insert("name".into(), json!(f.name));
                if let Some(description) = &f.description {
                    declaration.insert("description".into(), json!(description));
                }
                if let Some(parameters) = &f.parameters {
                    declaration.insert("parametersJsonSchema".into(), parameters.clone());
                }
                Ok(Value::Object(declaration))
            }
            (kind, _) => Err(unsupported(
                KIND,
                &format!("tools[{i}]"),
                &format!("only `function` tools can be translated, not `{kind}`"),
            )),
        })
        .collect()
}

fn tool_config(request: &ChatRequest) -> Result<Option<Value>, GatewayError> {
    let config = match &request.tool_choice {
        None => return Ok(None),
        Some(ToolChoice::Mode(mode)) => {
            let mode = match mode.as_str() {
                "auto" => "AUTO",
                "required" => "ANY",
                "none" => "NONE",
                other => {
                    return Err(GatewayError::bad_request(format!(
                        "tool_choice `{other}` is not one of none, auto, required."
                    ))
                    .with_param("tool_choice"))
                }
            };
            json!({ "mode": mode })
        }
        Some(ToolChoice::Named { function }) => {
            json!({ "mode": "ANY", "allowedFunctionNames": [function.name] })
        }
    };
    Ok(Some(json!({ "functionCallingConfig": config })))
}

/// A parameter from `other`, with JSON `null` meaning unset.
fn other_param<'a>(request: &'a ChatRequest, name: &str) -> Option<&'a Value> {
    request.other.get(name).filter(|v| !v.is_null())
}

fn must_be(name: &'static str, what: &str) -> GatewayError {
    GatewayError::bad_request(format!("`{name}` must be {what}.")).with_param(name)
}

fn generation_config(request: &ChatRequest) -> Result<Map<String, Value>, GatewayError> {
    let mut config = Map::new();
    if let Some(max) = request.max_output_tokens() {
        config.insert("maxOutputTokens".into(), json!(max));
    }
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(stop) = &request.stop {
        let sequences = stop.sequences();
        if !sequences.is_empty() {
            config.insert("stopSequences".into(), json!(sequences));
        }
    }
    if let Some(seed) = other_param(request, "seed") {
        let seed = seed.as_i64().ok_or_else(|| must_be("seed", "an integer"))?;
        config.insert("seed".into(), json!(seed));
    }
    for (name, key) in [
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(value) = other_param(request, name) {
            let value = value.as_f64().ok_or_else(|| must_be(name, "a number"))?;
            // 0 is OpenAI's default; several Gemini models refuse the penalties outright, so a
            // client that merely spells out the default should not be turned away.
            if value != 0.0 {
                config.insert(key.into(), json!(value));
            }
        }
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            config.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = &json_schema.schema {
                config.insert("responseJsonSchema".into(), schema.clone());
            }
        }
    }
    if let Some(effort) = other_param(request, "reasoning_effort") {
        let budget = effort.as_str().and_then(thinking_budget).ok_or_else(|| {
            unsupported(
                KIND,
                "reasoning_effort",
                "use none, minimal, low, medium or high",
            )
        })?;
        config.insert("thinkingConfig".into(), json!({ "thinkingBudget": budget }));
    }
    Ok(config)
}

// ---------------------------------------------------------------------------------------------
// Response

/// One `GenerateContentResponse`: a whole answer, or one event of a stream. An `error` field is
/// how a stream reports a failure after it started.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse<'a> {
    #[serde(borrow, default)]
    candidates: Vec<Candidate<'a>>,
    #[serde(borrow)]
    prompt_feedback: Option<PromptFeedback<'a>>,
    usage_metadata: Option<UsageMetadata>,
    /// Empty when absent.
    #[serde(borrow, default)]
    model_version: Cow<'a, str>,
    #[serde(borrow, default)]
    response_id: Cow<'a, str>,
    #[serde(borrow)]
    error: Option<ErrorBody<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(borrow)]
    content: Option<CandidateContent<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CandidateContent<'a> {
    #[serde(borrow, default)]
    parts: Vec<Part<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    /// Empty when the part is not text.
    #[serde(borrow, default)]
    text: Cow<'a, str>,
    /// A thought summary, not part of the answer.
    #[serde(default)]
    thought: bool,
    #[serde(borrow)]
    function_call: Option<FunctionCallPart<'a>>,
}

#[derive(Deserialize)]
struct FunctionCallPart<'a> {
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    args: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback<'a> {
    #[serde(borrow)]
    block_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Gemini's prompt count already includes cached tokens, as OpenAI's does; thinking tokens
    /// are counted apart from the candidates', OpenAI counts them as completion tokens.
    fn to_openai(self) -> Usage {
        Usage::new(
            self.prompt_token_count.unwrap_or(0),
            self.candidates_token_count
                .unwrap_or(0)
                .saturating_add(self.thoughts_token_count.unwrap_or(0)),
            self.cached_content_token_count,
            self.thoughts_token_count,
        )
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    error: ErrorBody<'a>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    code: Option<u64>,
    #[serde(borrow, default)]
    message: Cow<'a, str>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
}

impl ErrorBody<'_> {
    fn message(&self) -> String {
        match &self.status {
            Some(status) => format!("Gemini: {} ({status})", self.message),
            None => format!("Gemini: {}", self.message),
        }
    }

    /// An error that arrived inside a 200 stream: its own code is the status.
    fn into_error(self) -> GatewayError {
        let status = self
            .code
            .and_then(|code| u16::try_from(code).ok())
            .and_then(|code| StatusCode::from_u16(code).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        upstream_error(status, self.message())
    }
}

fn finish_reason(reason: &str, tool_calls: bool) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        // The client must be told to run the calls whatever else Gemini said.
        _ if tool_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// Gemini gives no id unless it has one; OpenAI clients need one to answer the call.
fn call_id(id: &str) -> String {
    if id.is_empty() {
        format!("call_{:024x}", rand::random::<u128>() >> 32)
    } else {
        id.to_string()
    }
}

fn call_arguments(args: Option<&RawValue>) -> String {
    match args.map(RawValue::get) {
        None | Some("null") => "{}".to_string(),
        Some(raw) => compact_json(raw),
    }
}

/// Valid JSON without the whitespace between tokens (a whole answer is pretty-printed), keeping
/// key order and number spelling as Gemini wrote them.
fn compact_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

fn parse_response(data: &[u8]) -> Result<GenerateContentResponse<'_>, GatewayError> {
    serde_json::from_slice(data).map_err(|e| {
        GatewayError::bad_gateway(format!("The provider's answer could not be read: {e}"))
    })
}

/// A 2xx `GenerateContentResponse` as an OpenAI `chat.completion`.
pub fn response_body(body: &[u8], model: &str) -> Result<Vec<u8>, GatewayError> {
    let response = parse_response(body)?;
    if let Some(error) = response.error {
        return Err(error.into_error());
    }
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    let finish = match response.candidates.into_iter().next() {
        Some(candidate) => {
            for part in candidate.content.into_iter().flat_map(|c| c.parts) {
                if let Some(call) = part.function_call {
                    tool_calls.push(ToolCallOut {
                        id: call_id(&call.id),
                        name: call.name.into_owned(),
                        arguments: call_arguments(call.args),
                    });
                } else if !part.thought && !part.text.is_empty() {
                    text.get_or_insert_with(String::new).push_str(&part.text);
                }
            }
            finish_reason(
                candidate.finish_reason.as_deref().unwrap_or(""),
                !tool_calls.is_empty(),
            )
        }
        None if is_blocked(response.prompt_feedback.as_ref()) => FinishReason::ContentFilter,
        None => {
            return Err(GatewayError::bad_gateway(
                "The provider's answer has no candidates.",
            ))
        }
    };
    let completion = Completion {
        id: if response.response_id.is_empty() {
            completion_id()
        } else {
            response.response_id.into_owned()
        },
        model: if response.model_version.is_empty() {
            model.to_string()
        } else {
            response.model_version.into_owned()
        },
        text,
        tool_calls,
        finish_reason: finish,
        usage: response.usage_metadata.map(UsageMetadata::to_openai),
    };
    Ok(completion.to_json())
}

/// The prompt itself was refused: no candidate at all.
fn is_blocked(feedback: Option<&PromptFeedback<'_>>) -> bool {
    feedback.is_some_and(|f| f.block_reason.as_deref().is_some_and(|r| !r.is_empty()))
}

/// A Gemini error answer in OpenAI's shape, keeping the upstream status.
pub fn error(status: StatusCode, body: &[u8]) -> GatewayError {
    // `{"error":{...}}`, or the same inside a one-element array (non-SSE stream errors). The
    // array is tried first: a derived struct would also accept it, as a sequence, and read nothing.
    let parsed = serde_json::from_slice::<[ErrorEnvelope; 1]>(body)
        .map(|[envelope]| envelope)
        .or_else(|_| serde_json::from_slice::<ErrorEnvelope>(body));
    match parsed {
        Ok(envelope) => upstream_error(status, envelope.error.message()),
        Err(_) => upstream_error(
            status,
            format!(
                "Gemini answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Stream

struct GeminiStream {
    writer: ChunkWriter,
    started: bool,
    /// Tool calls sent so far; the next one's OpenAI index.
    tool_calls: u32,
    finished: bool,
    /// The latest counts: each event repeats them, updated.
    usage: Option<UsageMetadata>,
}

pub fn stream_translator(request: &ChatRequest, model: &str) -> Box<dyn StreamTranslator> {
    Box::new(GeminiStream {
        writer: ChunkWriter::new(completion_id(), model, request.include_usage()),
        started: false,
        tool_calls: 0,
        finished: false,
        usage: None,
    })
}

impl StreamTranslator for GeminiStream {
    fn event(&mut self, event: SseEvent<'_>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        let response = parse_response(event.data.as_bytes())?;
        if let Some(error) = response.error {
            return Err(error.into_error());
        }
        if !self.started {
            self.started = true;
            self.writer
                .identify(Some(&response.response_id), Some(&response.model_version));
            self.writer.role(out);
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage);
        }
        if self.finished {
            // Only counts may follow the finish reason; OpenAI has no content after it.
            return Ok(());
        }
        let Some(candidate) = response.candidates.into_iter().next() else {
            if is_blocked(response.prompt_feedback.as_ref()) {
                self.finished = true;
                self.writer.finish(out, FinishReason::ContentFilter);
            }
            return Ok(());
        };
        for part in candidate.content.into_iter().flat_map(|c| c.parts) {
            if let Some(call) = part.function_call {
                let id = call_id(&call.id);
                let arguments = call_arguments(call.args);
                self.writer
                    .tool_call_start(out, self.tool_calls, &id, &call.name, &arguments);
                self.tool_calls += 1;
            } else if !part.thought {
                self.writer.text(out, &part.text);
            }
        }
        if let Some(reason) = candidate.finish_reason.as_deref() {
            self.finished = true;
            self.writer
                .finish(out, finish_reason(reason, self.tool_calls > 0));
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        if !self.finished {
            return Err(GatewayError::bad_gateway(
                "The provider's stream ended before the answer was complete.",
            ));
        }
        if let Some(usage) = self.usage {
            self.writer.usage(out, &usage.to_openai());
        }
        ChunkWriter::done(out);
        Ok(())
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(UsageMetadata::to_openai)
    }
}

/// The Gemini adapter: requests and answers through the translation above.
pub struct GeminiAdapter;

impl super::Adapter for GeminiAdapter {
    fn name(&self) -> &'static str {
        KIND
    }

    /// `x-goog-api-key` rather than the `?key=` query, so keys stay out of URL logs.
    fn auth_header(&self, api_key: &str) -> Option<(http::HeaderName, http::HeaderValue)> {
        super::adapter::key_header("x-goog-api-key", api_key)
    }

    fn chat_path(&self, model: &str, stream: bool) -> String {
        endpoint_path(model, stream)
    }

    fn request_body(
        &self,
        chat: &ChatRequest,
        _model: &str,
        _default_max_tokens: u64,
    ) -> Result<Vec<u8>, GatewayError> {
        request_body(chat)
    }

    fn stream_translator(
        &self,
        chat: &ChatRequest,
        model: &str,
    ) -> Option<Box<dyn StreamTranslator>> {
        Some(stream_translator(chat, model))
    }

    fn answer(&self, body: &[u8], model: &str) -> Result<Vec<u8>, GatewayError> {
        response_body(body, model)
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> GatewayError {
        error(status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::TranslatedStream;

    const TEXT_JSON: &str = include_str!("../mock/fixtures/gemini/text.json");
    const TEXT_SSE: &str = include_str!("../mock/fixtures/gemini/text.sse");
    const FUNCTION_CALL_JSON: &str = include_str!("../mock/fixtures/gemini/function_call.json");
    const FUNCTION_CALL_SSE: &str = include_str!("../mock/fixtures/gemini/function_call.sse");
    const SAFETY_JSON: &str = include_str!("../mock/fixtures/gemini/safety.json");
    const THINKING_JSON: &str = include_str!("../mock/fixtures/gemini/thinking.json");
    const THINKING_SSE: &str = include_str!("../mock/fixtures/gemini/thinking.sse");
    const ERROR_MID_STREAM_SSE: &str = include_str!("../mock/fixtures/gemini/error_mid_stream.sse");
    const INVALID_ARGUMENT_JSON: &str =
        include_str!("../mock/fixtures/gemini/invalid_argument.json");

    fn chat(request: Value) -> ChatRequest {
        ChatRequest::parse(&serde_json::to_vec(&request).unwrap()).unwrap()
    }

    fn translate(request: Value) -> Result<Value, GatewayError> {
        request_body(&chat(request)).map(|body| serde_json::from_slice(&body).unwrap())
    }

    fn translated(request: Value) -> Value {
        translate(request).unwrap()
    }

    fn with_messages(extra: Value) -> Value {
        let mut request = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
        for (key, value) in extra.as_object().unwrap() {
            request[key] = value.clone();
        }
        request
    }

    fn completion(body: &str) -> Value {
        serde_json::from_slice(&response_body(body.as_bytes(), "gemini-test").unwrap()).unwrap()
    }

    /// Feeds `sse` through the translator 7 bytes at a time; returns each OpenAI event's data.
    fn stream(sse: &str, include_usage: bool) -> Result<Vec<String>, GatewayError> {
        let request = chat(json!({
            "model": "m", "messages": [], "stream": true,
            "stream_options": {"include_usage": include_usage}
        }));
        let mut translated = TranslatedStream::new(stream_translator(&request, "gemini-test"));
        let mut out = Vec::new();
        for piece in sse.as_bytes().chunks(7) {
            out.extend_from_slice(&translated.push(piece)?);
        }
        out.extend_from_slice(&translated.end()?);
        let text = String::from_utf8(out).unwrap();
        Ok(text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").unwrap().to_string())
            .collect())
    }

    fn parse_chunks(events: &[String]) -> Vec<Value> {
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect()
    }

    fn content_of(chunks: &[Value]) -> String {
        chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect()
    }

    fn finish_reasons(chunks: &[Value]) -> Vec<&str> {
        chunks
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
            .collect()
    }

    // --- request ------------------------------------------------------------------------------

    #[test]
    fn request_maps_system_turns_and_a_tool_round_trip() {
        let body = translated(json!({
            "model": "gemini-2.5-flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_a", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function",
                     "function": {"name": "get_forecast", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp_c\": 21}"},
                {"role": "tool", "tool_call_id": "call_b", "content": "sunny"},
                {"role": "user", "content": "Thanks"},
                {"role": "user", "content": ""},
                {"role": "assistant", "content": "You're welcome."}
            ]
        }));
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "Be brief.\nUse metric units."}]})
        );
        let contents = body["contents"].as_array().unwrap();
        let roles: Vec<&str> = contents
            .iter()
            .map(|c| c["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "model", "user", "model"]);
        assert_eq!(
            contents[0]["parts"],
            json!([{"text": "Weather in Paris and Rome?"}])
        );
        assert_eq!(
            contents[1]["parts"],
            json!([
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                 "thoughtSignature": FOREIGN_THOUGHT_SIGNATURE},
                {"functionCall": {"name": "get_forecast", "args": {}},
                 "thoughtSignature": FOREIGN_THOUGHT_SIGNATURE}
            ])
        );
        // Both results and the next user text merge into one user content.
        assert_eq!(
            contents[2]["parts"],
            json!([
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                {"functionResponse": {"name": "get_forecast", "response": {"content": "sunny"}}},
                {"text": "Thanks"}
            ])
        );
        assert_eq!(contents[3]["parts"], json!([{"text": "You're welcome."}]));
        assert!(body.get("generationConfig").is_none());
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn request_maps_inline_and_linked_images() {
        let body = translated(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=2"}},
                {"type": "image_url", "image_url": "http://example.com/dog"}
            ]}]}),
        );
        assert_eq!(
            body["contents"][0]["parts"],
            json!([
                {"text": "Compare"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/webp",
                              "fileUri": "https://example.com/cat.webp?size=2"}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "http://example.com/dog"}}
            ])
        );
        let err = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}
            ]}]}),
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].content[0]"));
    }

    #[test]
    fn request_maps_tools_and_each_tool_choice() {
        let tools = json!([
            {"type": "function", "function": {
                "name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
            }},
            {"type": "function", "function": {"name": "now"}}
        ]);
        let body = translated(with_messages(json!({"tools": tools})));
        assert_eq!(
            body["tools"],
            json!([{"functionDeclarations": [
                {"name": "get_weather", "description": "Current weather",
                 "parametersJsonSchema":
                    {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"name": "now"}
            ]}])
        );
        assert!(body.get("toolConfig").is_none());
        for (choice, config) in [
            (json!("auto"), json!({"mode": "AUTO"})),
            (json!("required"), json!({"mode": "ANY"})),
            (json!("none"), json!({"mode": "NONE"})),
            (
                json!({"type": "function", "function": {"name": "now"}}),
                json!({"mode": "ANY", "allowedFunctionNames": ["now"]}),
            ),
        ] {
            let body = translated(with_messages(
                json!({"tools": tools, "tool_choice": choice}),
            ));
            assert_eq!(body["toolConfig"], json!({"functionCallingConfig": config}));
        }
        let err = translate(with_messages(
            json!({"tools": tools, "tool_choice": "sometimes"}),
        ))
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("tool_choice"));
        let err = translate(with_messages(
            json!({"tools": [{"type": "code_interpreter"}]}),
        ))
        .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.param.as_deref(), Some("tools[0]"));
    }

    #[test]
    fn request_maps_generation_config() {
        let body = translated(with_messages(json!({
            "max_tokens": 100, "max_completion_tokens": 200, "temperature": 0.5, "top_p": 0.9,
            "stop": ["END", "STOP"], "seed": 42, "presence_penalty": 0.5,
            "frequency_penalty": 0, "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "answer", "strict": true,
                "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}
            }},
            "store": true, "metadata": {"k": "v"}, "service_tier": "auto",
            "user": "u-1", "parallel_tool_calls": false
        })));
        assert_eq!(
            body["generationConfig"],
            json!({
                "maxOutputTokens": 200, "temperature": 0.5, "topP": 0.9,
                "stopSequences": ["END", "STOP"], "seed": 42, "presencePenalty": 0.5,
                "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object", "properties": {"n": {"type": "integer"}}},
                "thinkingConfig": {"thinkingBudget": 1024}
            })
        );
        let body = translated(with_messages(json!({
            "stop": "\n\n", "response_format": {"type": "json_object"},
            "reasoning_effort": "none"
        })));
        assert_eq!(
            body["generationConfig"],
            json!({
                "stopSequences": ["\n\n"], "responseMimeType": "application/json",
                "thinkingConfig": {"thinkingBudget": 0}
            })
        );
        for (effort, budget) in [("minimal", 0), ("medium", 8192), ("high", 24576)] {
            let body = translated(with_messages(json!({"reasoning_effort": effort})));
            assert_eq!(
                body["generationConfig"]["thinkingConfig"]["thinkingBudget"],
                budget
            );
        }
    }

    #[test]
    fn request_refuses_what_gemini_cannot_take() {
        let cases = [
            (json!({"logprobs": true}), "logprobs"),
            (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
            (json!({"n": 2}), "n"),
            (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
            (json!({"seed": "forty-two"}), "seed"),
            (json!({"frequency_penalty": "lots"}), "frequency_penalty"),
        ];
        for (extra, param) in cases {
            let err = translate(with_messages(extra.clone())).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{extra}");
            assert_eq!(err.param.as_deref(), Some(param), "{extra}");
        }
        let err = translate(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
            ]}]}),
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].content[0]"));
        assert_eq!(err.code.as_deref(), Some("unsupported_parameter"));

        let call = |arguments: &str| {
            json!({"model": "m", "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "f", "arguments": arguments}}]}
            ]})
        };
        for bad in ["{\"city\":", "[1, 2]"] {
            let err = translate(call(bad)).unwrap_err();
            assert_eq!(
                err.param.as_deref(),
                Some("messages[1].tool_calls[0].function.arguments")
            );
        }
        let err = translate(json!({"model": "m", "messages": [
            {"role": "tool", "tool_call_id": "nowhere", "content": "x"}
        ]}))
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].tool_call_id"));
    }

    // --- whole answers ------------------------------------------------------------------------

    #[test]
    fn text_answer_becomes_a_completion() {
        let answer = completion(TEXT_JSON);
        assert_eq!(answer["object"], "chat.completion");
        assert_eq!(answer["id"], "k3JcaOyHFpW1nvgPq9e3sQw");
        assert_eq!(answer["model"], "gemini-2.0-flash");
        let choice = &answer["choices"][0];
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(
            choice["message"]["content"],
            "The capital of France is Paris. It has been the seat of the French government \
             since the late 10th century.\n"
        );
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 8, "completion_tokens": 24, "total_tokens": 32})
        );
    }

    #[test]
    fn function_call_answer_becomes_tool_calls() {
        let answer = completion(FUNCTION_CALL_JSON);
        let message = &answer["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        let calls = message["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        let id = calls[0]["id"].as_str().unwrap();
        assert!(id.starts_with("call_") && id.len() > 10, "{id}");
        assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(answer["usage"]["completion_tokens"], 15 + 64);
        assert_eq!(answer["usage"]["total_tokens"], 137);
        assert_eq!(
            answer["usage"]["completion_tokens_details"]["reasoning_tokens"],
            64
        );
    }

    #[test]
    fn function_call_ids_and_args_are_kept() {
        let answer = completion(
            r#"{"candidates": [{"content": {"parts": [
                {"functionCall": {"id": "fc-7", "name": "now"}},
                {"functionCall": {"name": "f", "args": {"q": "a \" b", "n": [1, 2.50]}}}
            ]}, "finishReason": "STOP"}]}"#,
        );
        let calls = &answer["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls[0]["id"], "fc-7");
        assert_eq!(calls[0]["function"]["arguments"], "{}");
        assert_eq!(
            calls[1]["function"]["arguments"],
            r#"{"q":"a \" b","n":[1,2.50]}"#
        );
        assert_ne!(calls[1]["id"], calls[0]["id"]);
        // No modelVersion, responseId or usage: the given model, a fresh id, no usage.
        assert_eq!(answer["model"], "gemini-test");
        assert!(answer["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert!(answer.get("usage").is_none());
    }

    #[test]
    fn safety_stop_and_blocked_prompt_are_content_filter() {
        let answer = completion(SAFETY_JSON);
        assert_eq!(answer["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(answer["choices"][0]["message"]["content"], "");
        assert_eq!(answer["usage"]["completion_tokens"], 0);

        let answer = completion(
            r#"{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}"#,
        );
        assert_eq!(answer["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(answer["choices"][0]["message"]["content"], "");

        let err = response_body(b"{\"usageMetadata\": {}}", "m").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn finish_reasons_map() {
        let answer = |reason: &str| {
            completion(&format!(
                r#"{{"candidates": [{{"content": {{"parts": [{{"text": "x"}}]}},
                    "finishReason": "{reason}"}}]}}"#
            ))["choices"][0]["finish_reason"]
                .clone()
        };
        assert_eq!(answer("MAX_TOKENS"), "length");
        for reason in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
        ] {
            assert_eq!(answer(reason), "content_filter", "{reason}");
        }
        assert_eq!(answer("MALFORMED_FUNCTION_CALL"), "stop");
        assert_eq!(answer("STOP"), "stop");
    }

    #[test]
    fn thinking_answer_leaves_thoughts_out_and_counts_them() {
        let answer = completion(THINKING_JSON);
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            "The sum of the first ten prime numbers is **129**."
        );
        assert_eq!(
            answer["usage"],
            json!({
                "prompt_tokens": 2150, "completion_tokens": 361, "total_tokens": 2511,
                "prompt_tokens_details": {"cached_tokens": 2048},
                "completion_tokens_details": {"reasoning_tokens": 342}
            })
        );
    }

    #[test]
    fn malformed_answer_is_bad_gateway() {
        let err = response_body(b"<html>oops</html>", "m").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn error_bodies_keep_status_and_message() {
        let err = error(StatusCode::BAD_REQUEST, INVALID_ARGUMENT_JSON.as_bytes());
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.kind, "invalid_request_error");
        assert!(
            err.message.contains("Unknown name \"maxTokens\""),
            "{}",
            err.message
        );
        assert!(err.message.contains("INVALID_ARGUMENT"), "{}", err.message);

        let array = br#"[{"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"}}]"#;
        let err = error(StatusCode::TOO_MANY_REQUESTS, array);
        assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
        assert!(err.message.contains("Quota exceeded."), "{}", err.message);

        let err = error(StatusCode::BAD_GATEWAY, b"<html>Bad Gateway</html>");
        assert_eq!(err.status, StatusCode::BAD_GATEWAY);
        assert!(err.message.contains("502"), "{}", err.message);
        assert!(
            err.message.contains("Bad Gateway</html>"),
            "{}",
            err.message
        );
    }

    // --- streams ------------------------------------------------------------------------------

    #[test]
    fn text_stream_is_translated_incrementally() {
        let events = stream(TEXT_SSE, true).unwrap();
        let chunks = parse_chunks(&events);
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], "pXJcaNKCA8mgnvgP0LuM8Aw");
            assert_eq!(chunk["model"], "gemini-2.0-flash");
        }
        // One content chunk per Gemini event, not buffered.
        let texts = chunks
            .iter()
            .filter(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            })
            .count();
        assert_eq!(texts, 3);
        assert_eq!(
            content_of(&chunks),
            "The capital of France is Paris — it has been the seat of the French government \
             since the late 10th century.\n"
        );
        assert_eq!(finish_reasons(&chunks), ["stop"]);
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 8, "completion_tokens": 24, "total_tokens": 32})
        );

        let events = stream(TEXT_SSE, false).unwrap();
        let chunks = parse_chunks(&events);
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
    }

    #[test]
    fn function_call_stream_gives_indexed_tool_calls() {
        let events = stream(FUNCTION_CALL_SSE, true).unwrap();
        let chunks = parse_chunks(&events);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let calls: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["index"], 0);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(calls[1]["index"], 1);
        assert_eq!(calls[1]["function"]["name"], "get_local_time");
        assert_eq!(
            calls[1]["function"]["arguments"],
            "{\"timezone\":\"Europe/Paris\",\"format\":\"24h\"}"
        );
        let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert!(ids.iter().all(|id| id.starts_with("call_")), "{ids:?}");
        assert_ne!(ids[0], ids[1]);
        assert_eq!(content_of(&chunks), "");
        assert_eq!(finish_reasons(&chunks), ["tool_calls"]);
        assert_eq!(
            chunks.last().unwrap()["usage"]["completion_tokens"],
            37 + 70
        );
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 203);
    }

    #[test]
    fn thinking_stream_leaves_thoughts_out_and_counts_them() {
        let events = stream(THINKING_SSE, true).unwrap();
        let chunks = parse_chunks(&events);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            content_of(&chunks),
            "The sum of the first ten prime numbers is **129**."
        );
        assert_eq!(finish_reasons(&chunks), ["stop"]);
        assert_eq!(
            chunks.last().unwrap()["usage"],
            json!({
                "prompt_tokens": 2150, "completion_tokens": 361, "total_tokens": 2511,
                "prompt_tokens_details": {"cached_tokens": 2048},
                "completion_tokens_details": {"reasoning_tokens": 342}
            })
        );
    }

    #[test]
    fn error_event_mid_stream_ends_it_with_the_upstream_status() {
        let request = chat(json!({"model": "m", "messages": []}));
        let mut translated = TranslatedStream::new(stream_translator(&request, "gemini-test"));
        let (first, rest) =
            ERROR_MID_STREAM_SSE.split_at(ERROR_MID_STREAM_SSE.find("\n\n").unwrap() + 2);
        let out = translated.push(first.as_bytes()).unwrap();
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(out.contains("Once upon a time"), "{out}");
        let err = translated.push(rest.as_bytes()).unwrap_err();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            err.message.contains("The model is overloaded."),
            "{}",
            err.message
        );

        let err = stream(ERROR_MID_STREAM_SSE, true).unwrap_err();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        let err = stream("data: {\"error\": {\"message\": \"boom\"}}\n\n", true).unwrap_err();
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn stream_without_finish_reason_is_incomplete() {
        let first_event = &TEXT_SSE[..TEXT_SSE.find("\r\n\r\n").unwrap() + 4];
        let err = stream(first_event, true).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_GATEWAY);
        assert!(err.message.contains("ended before"), "{}", err.message);
        let err = stream("", false).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn malformed_stream_event_is_bad_gateway() {
        let err = stream("data: {\"candidates\": [\n\n", false).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn blocked_prompt_stream_finishes_with_content_filter() {
        let events = stream(
            "data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"}, \"usageMetadata\": {\"promptTokenCount\": 5}}\r\n\r\n",
            true,
        )
        .unwrap();
        let chunks = parse_chunks(&events);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(finish_reasons(&chunks), ["content_filter"]);
        assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 5);
    }

    #[test]
    fn compact_json_only_drops_whitespace_between_tokens() {
        assert_eq!(
            compact_json("{\n  \"a b\": [ 1, \"x\\\" \\\\\" ],\n  \"c\" : {}\n}"),
            "{\"a b\":[1,\"x\\\" \\\\\"],\"c\":{}}"
        );
    }

    #[test]
    fn endpoint_paths() {
        assert_eq!(
            endpoint_path("gemini-2.5-flash", false),
            "/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            endpoint_path("gemini-2.5-flash", true),
            "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }
}
