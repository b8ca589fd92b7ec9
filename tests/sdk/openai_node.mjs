// The official OpenAI Node SDK against the gateway, unchanged. Run by tests/sdk_clients.rs.
// usage: node openai_node.mjs BASE_URL KEY   (with NODE_PATH pointing at a node_modules that has `openai`)
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(process.env.NODE_PATH + "/");
const { default: OpenAI, toFile } = require("openai");

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const messages = [{ role: "user", content: "Hello!" }];

const reply = await client.chat.completions.create({ model: "mock-gpt", messages });
assert.equal(reply.choices[0].message.content, "tok0 tok1 tok2");

let text = "";
const stream = await client.chat.completions.create({ model: "mock-gpt", messages, stream: true });
for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
assert.equal(text, "tok0 tok1 tok2 ");

const emb = await client.embeddings.create({ model: "mock-embed", input: "a" });
assert.equal(emb.data.length, 1);

const models = await client.models.list();
assert.ok(models.data.some((m) => m.id === "mock-gpt"));

const audio = Buffer.alloc(5000, 7);
const tr = await client.audio.transcriptions.create({
  model: "mock-whisper",
  file: await toFile(audio, "a.mp3"),
});
assert.ok(tr.text.includes("5000 bytes"), tr.text);

await assert.rejects(
  new OpenAI({ baseURL, apiKey: "wrong-key-123", maxRetries: 0 }).models.list(),
  (e) => e.status === 401,
);
await assert.rejects(
  client.chat.completions.create({ model: "no-such-model", messages }),
  (e) => e.status === 404 && e.code === "model_not_found",
);
console.log("node sdk: ok");
