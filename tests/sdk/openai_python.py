"""The official OpenAI Python SDK against the gateway, unchanged. Run by tests/sdk_clients.rs.

usage: python3 openai_python.py BASE_URL KEY
"""
import json
import sys

import openai
from openai import OpenAI

base_url, key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key=key, max_retries=0)
messages = [{"role": "user", "content": "Hello!"}]

reply = client.chat.completions.create(model="mock-gpt", messages=messages)
assert reply.choices[0].message.content == "tok0 tok1 tok2", reply

text = ""
usage = None
for chunk in client.chat.completions.create(
    model="mock-gpt", messages=messages, stream=True, stream_options={"include_usage": True}
):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert text == "tok0 tok1 tok2 ", text
assert usage is not None and usage.completion_tokens == 3, usage

tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
args = ""
for chunk in client.chat.completions.create(model="mock-gpt", messages=messages, tools=tools, stream=True):
    for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        args += call.function.arguments or ""
assert args == '{"city":"Paris"}', args

emb = client.embeddings.create(model="mock-embed", input=["a", "b"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8

ids = [m.id for m in client.models.list()]
assert "mock-gpt" in ids, ids

audio = bytes(range(256)) * 40
tr = client.audio.transcriptions.create(model="mock-whisper", file=("a.mp3", audio))
assert f"{len(audio)} bytes" in tr.text, tr
srt = client.audio.transcriptions.create(model="mock-whisper", file=("a.mp3", audio), response_format="srt")
assert "-->" in srt, srt
events = list(client.audio.transcriptions.create(model="mock-whisper", file=("a.mp3", audio), stream=True))
assert events[-1].type == "transcript.text.done", events[-1]

try:
    OpenAI(base_url=base_url, api_key="wrong-key-123", max_retries=0).models.list()
    raise SystemExit("a wrong key was accepted")
except openai.AuthenticationError:
    pass
try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    raise SystemExit("an unknown model was accepted")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e
try:
    client.chat.completions.create(model="mock-gpt", messages=messages, extra_body={"mock": {"status": 429}})
    raise SystemExit("an upstream 429 was hidden")
except openai.RateLimitError:
    pass
try:
    for _ in client.chat.completions.create(
        model="mock-gpt", messages=messages, stream=True,
        extra_body={"mock": {"reset_after": 2, "chunk_delay_ms": 20}},
    ):
        pass
    raise SystemExit("a reset mid-stream went unnoticed")
except openai.APIError as e:
    assert "upstream" in str(e), e

# Claude and Gemini by translation: the same SDK calls, the same answer types.
reply = client.chat.completions.create(model="claude-text", messages=messages)
assert reply.choices[0].message.content.startswith("Paris is the capital"), reply
assert reply.usage.prompt_tokens_details.cached_tokens == 1024, reply.usage
calls = {}
for chunk in client.chat.completions.create(model="claude-tools", messages=messages, tools=tools, stream=True):
    for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        calls[call.index] = calls.get(call.index, "") + (call.function.arguments or "")
assert json.loads(calls[0]) == {"city": "Paris"} and json.loads(calls[1]) == {"city": "Oslo"}, calls
text = ""
usage = None
for chunk in client.chat.completions.create(
    model="gemini-thinking", messages=messages, stream=True, stream_options={"include_usage": True}
):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert text, "no text from the translated Gemini stream"
assert usage.completion_tokens_details.reasoning_tokens > 0, usage
try:
    client.chat.completions.create(model="claude-invalid", messages=messages)
    raise SystemExit("a provider 400 was hidden")
except openai.BadRequestError as e:
    assert "max_tokens" in str(e), e
try:
    client.chat.completions.create(model="claude-text", messages=messages, logprobs=True)
    raise SystemExit("an untranslatable parameter was accepted")
except openai.BadRequestError as e:
    assert e.param == "logprobs", e

print("python sdk: ok")
