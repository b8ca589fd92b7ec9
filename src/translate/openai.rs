//! OpenAI's chat-completion shapes on both sides of a translation: the request a client sent,
//! read into types a translator can walk, and the completion or stream chunks written back.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::GatewayError;

// ---------------------------------------------------------------------------------------------
// The request

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Option<Stop>,
    pub tools: Option<Vec<Tool>>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub user: Option<String>,
    pub n: Option<u64>,
    /// Every other parameter. Each translator maps it, drops it (only where the README says
    /// so), or refuses it with a 400 naming it.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: Option<Content>,
    pub name: Option<String>,
    pub tool_calls: Option<Vec<ToolCall>>,
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a multi-part message. Kept loose (type as a string) so an unsupported part type
/// gets a 400 naming it rather than serde's "did not match any variant".
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    pub image_url: Option<ImageUrl>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ImageUrl {
    Object { url: String },
    Bare(String),
}

impl ImageUrl {
    pub fn url(&self) -> &str {
        match self {
            ImageUrl::Object { url } | ImageUrl::Bare(url) => url,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub function: FunctionCall,
}

#[derive(Debug, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: Option<FunctionDef>,
}

#[derive(Debug, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// "none", "auto" or "required".
    Mode(String),
    Named {
        function: NamedFunction,
    },
}

#[derive(Debug, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Deserialize)]
pub struct JsonSchemaFormat {
    pub name: Option<String>,
    pub schema: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn sequences(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

impl ChatRequest {
    /// Reads a chat request; a malformed one gets a 400 naming the offending path.
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            GatewayError::bad_request(format!("Invalid chat request at `{path}`: {message}"))
                .with_param(path)
        })
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// `max_completion_tokens` is the current name, `max_tokens` the older one.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Refuses `n` > 1: neither translated provider returns several choices in one stream.
    pub fn single_choice(&self, kind: &str) -> Result<(), GatewayError> {
        match self.n {
            Some(n) if n > 1 => Err(unsupported(kind, "n", "only n = 1 is available")),
            _ => Ok(()),
        }
    }

    /// Checks the parameters no field above names: those in `dropped` are ignored (the README
    /// lists them), those set to their default value are harmless, any other one is refused.
    pub fn check_other(&self, kind: &str, dropped: &[&str]) -> Result<(), GatewayError> {
        for (name, value) in &self.other {
            if dropped.contains(&name.as_str()) || is_default_value(name, value) {
                continue;
            }
            return Err(unsupported(kind, name, "the provider has no equivalent"));
        }
        Ok(())
    }
}

fn is_default_value(name: &str, value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) if name.ends_with("_penalty") => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// The 400 for a parameter a provider cannot take.
pub fn unsupported(kind: &str, param: &str, why: &str) -> GatewayError {
    GatewayError::bad_request(format!(
        "The parameter `{param}` is not supported for this model ({kind} provider): {why}."
    ))
    .with_param(param.to_string())
    .with_code("unsupported_parameter")
}

/// The text of a message whose parts must all be text (system prompts, tool results).
pub fn plain_text(content: Option<&Content>, kind: &str) -> Result<String, GatewayError> {
    match content {
        None => Ok(String::new()),
        Some(Content::Text(text)) => Ok(text.clone()),
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), &part.text) {
                    ("text", Some(t)) => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(t);
                    }
                    (other, _) => {
                        return Err(unsupported(
                            kind,
                            "messages.content",
                            &format!("a `{other}` part is only allowed in user messages"),
                        ))
                    }
                }
            }
            Ok(text)
        }
    }
}

/// A conversation being rewritten for a provider that keeps the system prompt apart and wants
/// roles to alternate: system texts are joined, consecutive turns of one role merge, and
/// empty turns are left out.
pub struct Conversation<R> {
    pub system: String,
    pub turns: Vec<(R, Vec<Value>)>,
}

impl<R: PartialEq> Conversation<R> {
    pub fn new() -> Self {
        Self {
            system: String::new(),
            turns: Vec::new(),
        }
    }

    pub fn add_system(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if !self.system.is_empty() {
            self.system.push('\n');
        }
        self.system.push_str(text);
    }

    pub fn add(&mut self, role: R, items: Vec<Value>) {
        if items.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(items),
            _ => self.turns.push((role, items)),
        }
    }
}

impl<R: PartialEq> Default for Conversation<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// One part of a user message, classified; each translator writes it in its own format.
pub enum UserPart<'a> {
    Text(&'a str),
    /// A base64 data URL.
    Inline(DataUrl<'a>),
    /// An http(s) URL the provider fetches itself.
    Linked(&'a str),
}

/// The parts of user message `i`, or a 400 naming the part that cannot be translated.
pub fn user_parts<'a>(
    content: Option<&'a Content>,
    i: usize,
    kind: &str,
) -> Result<Vec<UserPart<'a>>, GatewayError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(text)) => return Ok(vec![UserPart::Text(text)]),
        Some(Content::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = || format!("messages[{i}].content[{j}]");
        let classified = match (part.kind.as_str(), &part.text, &part.image_url) {
            ("text", Some(text), _) => UserPart::Text(text),
            ("image_url", _, Some(image)) => {
                let url = image.url();
                match parse_data_url(url) {
                    Some(data) => UserPart::Inline(data),
                    None if url.starts_with("https://") || url.starts_with("http://") => {
                        UserPart::Linked(url)
                    }
                    None => {
                        return Err(GatewayError::bad_request(format!(
                            "{}: an image URL must be http(s) or a base64 data URL.",
                            at()
                        ))
                        .with_param(at()))
                    }
                }
            }
            ("text", None, _) | ("image_url", _, None) => {
                return Err(GatewayError::bad_request(format!(
                    "{}: a `{}` part needs its `{}` field.",
                    at(),
                    part.kind,
                    part.kind
                ))
                .with_param(at()))
            }
            (other, _, _) => {
                return Err(unsupported(
                    kind,
                    &at(),
                    &format!("content parts of type `{other}` cannot be translated"),
                ))
            }
        };
        out.push(classified);
    }
    Ok(out)
}

/// An image given as `data:<media type>;base64,<data>`.
pub struct DataUrl<'a> {
    pub media_type: &'a str,
    pub data: &'a str,
}

pub fn parse_data_url(url: &str) -> Option<DataUrl<'_>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some(DataUrl { media_type, data })
}

/// A media type for an image fetched by URL, from its extension (providers want one).
pub fn media_type_from_url(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

// ---------------------------------------------------------------------------------------------
// The response

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PromptTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CompletionTokensDetails {
    pub reasoning_tokens: u64,
}

impl Usage {
    /// `prompt` counts every input token, cached ones included, as OpenAI's does; `completion`
    /// counts every output token, reasoning included.
    pub fn new(prompt: u64, completion: u64, cached: Option<u64>, reasoning: Option<u64>) -> Self {
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            prompt_tokens_details: cached
                .map(|cached_tokens| PromptTokensDetails { cached_tokens }),
            completion_tokens_details: reasoning
                .map(|reasoning_tokens| CompletionTokensDetails { reasoning_tokens }),
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh `chatcmpl-...` id for upstreams that give none.
pub fn completion_id() -> String {
    format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32)
}

/// A tool call in a finished (non-streamed) answer.
pub struct ToolCallOut {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A whole non-streamed answer, built by a translator and written as OpenAI's JSON.
pub struct Completion {
    pub id: String,
    pub model: String,
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCallOut>,
    pub finish_reason: FinishReason,
    pub usage: Option<Usage>,
}

#[derive(Serialize)]
struct CompletionJson<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceJson<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a Usage>,
}

#[derive(Serialize)]
struct ChoiceJson<'a> {
    index: u32,
    message: MessageJson<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct MessageJson<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallJson<'a>>,
}

#[derive(Serialize)]
struct ToolCallJson<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionJson<'a>,
}

#[derive(Serialize)]
struct FunctionJson<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl Completion {
    pub fn to_json(&self) -> Vec<u8> {
        let content = match (&self.text, self.tool_calls.is_empty()) {
            (Some(text), _) => Some(text.as_str()),
            (None, true) => Some(""),
            (None, false) => None,
        };
        let json = CompletionJson {
            id: &self.id,
            object: "chat.completion",
            created: unix_now(),
            model: &self.model,
            choices: [ChoiceJson {
                index: 0,
                message: MessageJson {
                    role: "assistant",
                    content,
                    refusal: None,
                    tool_calls: self
                        .tool_calls
                        .iter()
                        .map(|call| ToolCallJson {
                            id: &call.id,
                            kind: "function",
                            function: FunctionJson {
                                name: &call.name,
                                arguments: &call.arguments,
                            },
                        })
                        .collect(),
                },
                logprobs: None,
                finish_reason: self.finish_reason.as_str(),
            }],
            usage: self.usage.as_ref(),
        };
        serde_json::to_vec(&json).unwrap_or_default()
    }
}

/// Writes `chat.completion.chunk` events for one streamed answer.
pub struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

#[derive(Serialize)]
struct ChunkJson<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoiceJson<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a Usage>,
}

#[derive(Serialize)]
struct ChunkChoiceJson<'a> {
    index: u32,
    delta: DeltaJson<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct DeltaJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDeltaJson<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDeltaJson<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDeltaJson<'a>,
}

#[derive(Serialize)]
struct FunctionDeltaJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

impl ChunkWriter {
    pub fn new(id: impl Into<String>, model: impl Into<String>, include_usage: bool) -> Self {
        Self {
            id: id.into(),
            created: unix_now(),
            model: model.into(),
            include_usage,
        }
    }

    /// Sets the id and model once the upstream has named them (its first event).
    pub fn identify(&mut self, id: Option<&str>, model: Option<&str>) {
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            self.id = id.to_string();
        }
        if let Some(model) = model.filter(|s| !s.is_empty()) {
            self.model = model.to_string();
        }
    }

    fn write(&self, out: &mut Vec<u8>, delta: DeltaJson<'_>, finish: Option<FinishReason>) {
        let choices = [ChunkChoiceJson {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish.map(FinishReason::as_str),
        }];
        self.write_chunk(out, &choices, None);
    }

    fn write_chunk(
        &self,
        out: &mut Vec<u8>,
        choices: &[ChunkChoiceJson<'_>],
        usage: Option<&Usage>,
    ) {
        let chunk = ChunkJson {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        out.extend_from_slice(b"data: ");
        // Writing plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &chunk);
        out.extend_from_slice(b"\n\n");
    }

    /// The opening chunk: the assistant role and empty content, as OpenAI sends it.
    pub fn role(&self, out: &mut Vec<u8>) {
        let delta = DeltaJson {
            role: Some("assistant"),
            content: Some(""),
            ..Default::default()
        };
        self.write(out, delta, None);
    }

    pub fn text(&self, out: &mut Vec<u8>, text: &str) {
        if text.is_empty() {
            return;
        }
        let delta = DeltaJson {
            content: Some(text),
            ..Default::default()
        };
        self.write(out, delta, None);
    }

    /// The first delta of a tool call: its index, id and name (and arguments when the provider
    /// sends them whole).
    pub fn tool_call_start(
        &self,
        out: &mut Vec<u8>,
        index: u32,
        id: &str,
        name: &str,
        arguments: &str,
    ) {
        let delta = DeltaJson {
            tool_calls: Some([ToolCallDeltaJson {
                index,
                id: Some(id),
                kind: Some("function"),
                function: FunctionDeltaJson {
                    name: Some(name),
                    arguments,
                },
            }]),
            ..Default::default()
        };
        self.write(out, delta, None);
    }

    pub fn tool_call_arguments(&self, out: &mut Vec<u8>, index: u32, fragment: &str) {
        if fragment.is_empty() {
            return;
        }
        let delta = DeltaJson {
            tool_calls: Some([ToolCallDeltaJson {
                index,
                id: None,
                kind: None,
                function: FunctionDeltaJson {
                    name: None,
                    arguments: fragment,
                },
            }]),
            ..Default::default()
        };
        self.write(out, delta, None);
    }

    pub fn finish(&self, out: &mut Vec<u8>, reason: FinishReason) {
        self.write(out, DeltaJson::default(), Some(reason));
    }

    /// The closing usage chunk (empty `choices`), sent only when the client asked for it.
    pub fn usage(&self, out: &mut Vec<u8>, usage: &Usage) {
        if self.include_usage {
            self.write_chunk(out, &[], Some(usage));
        }
    }

    pub fn done(out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An upstream's error, in OpenAI's shape, with the upstream's status (a 529 "overloaded"
/// becomes 503, which OpenAI SDKs know to retry).
pub fn upstream_error(status: StatusCode, message: impl Into<Cow<'static, str>>) -> GatewayError {
    let status = if status.as_u16() == 529 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    let (kind, code) = match status.as_u16() {
        400 | 404 | 409 | 413 | 422 => ("invalid_request_error", None),
        401 => ("authentication_error", Some("invalid_api_key")),
        403 => ("permission_error", None),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        _ => ("server_error", None),
    };
    let mut error = GatewayError::upstream(status, kind, message.into().into_owned());
    if let Some(code) = code {
        error = error.with_code(code);
    }
    error
}

impl From<&Usage> for crate::usage::TokenUsage {
    fn from(usage: &Usage) -> Self {
        crate::usage::TokenUsage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: usage
                .prompt_tokens_details
                .as_ref()
                .map_or(0, |d| d.cached_tokens),
            reasoning_tokens: usage
                .completion_tokens_details
                .as_ref()
                .map_or(0, |d| d.reasoning_tokens),
            ..crate::usage::TokenUsage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_path() {
        let err =
            ChatRequest::parse(br#"{"model":"m","messages":[{"role":"wizard"}]}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.param.as_deref(), Some("messages[0].role"));
        assert!(err.message.contains("wizard"), "{}", err.message);
    }

    #[test]
    fn default_valued_parameters_are_accepted_others_refused() {
        let request = ChatRequest::parse(
            br#"{"model":"m","messages":[],"logprobs":false,"presence_penalty":0,"store":true}"#,
        )
        .unwrap();
        assert!(request.check_other("anthropic", &["store"]).is_ok());
        let err = request.check_other("anthropic", &[]).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("store"));
    }

    #[test]
    fn chunks_are_openai_events() {
        let writer = ChunkWriter::new("id1", "m", true);
        let mut out = Vec::new();
        writer.role(&mut out);
        writer.tool_call_start(&mut out, 0, "call_1", "f", "");
        writer.tool_call_arguments(&mut out, 0, "{\"a\"");
        writer.finish(&mut out, FinishReason::ToolCalls);
        writer.usage(&mut out, &Usage::new(3, 4, Some(1), None));
        ChunkWriter::done(&mut out);
        let text = String::from_utf8(out).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 6);
        let json = |i: usize| -> Value { serde_json::from_str(&events[i][6..]).unwrap() };
        assert_eq!(json(0)["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            json(1)["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "f"
        );
        assert_eq!(
            json(2)["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\""
        );
        assert_eq!(json(3)["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(json(4)["choices"].as_array().unwrap().len(), 0);
        assert_eq!(json(4)["usage"]["total_tokens"], 7);
        assert_eq!(
            json(4)["usage"]["prompt_tokens_details"]["cached_tokens"],
            1
        );
        assert_eq!(events[5], "data: [DONE]");
    }

    #[test]
    fn data_urls_split_into_type_and_data() {
        let url = parse_data_url("data:image/png;base64,AAAA").unwrap();
        assert_eq!((url.media_type, url.data), ("image/png", "AAAA"));
        assert!(parse_data_url("https://x/y.png").is_none());
        assert_eq!(media_type_from_url("https://x/y.PNG?sig=1"), "image/png");
    }
}
