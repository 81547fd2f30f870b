// Drives `dsrt serve` (started by run.sh with an R1-style template: replies open inside <think>)
// through the official `openai` package: models, chat non-streaming and streaming (reasoning
// read from reasoning_content apart from content), n > 1, completions with logprobs, API errors,
// and an aborted stream whose cache the server frees. Every loop is bounded.
// Usage: node openai_client.mjs PORT
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const port = Number(process.argv[2]);
const base = `http://127.0.0.1:${port}`;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });

async function metric(name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.slice(name.length + 1));
}

const models = await client.models.list();
assert.equal(models.data.length, 1);
const model = models.data[0].id;
const messages = [{ role: 'user', content: 'What is 6 x 7?' }];

// Non-streaming chat.
const r = await client.chat.completions.create({ model, messages, max_tokens: 16, seed: 7 });
assert.equal(r.object, 'chat.completion');
assert.equal(r.model, model);
const choice = r.choices[0];
assert.equal(choice.message.role, 'assistant');
assert.equal(typeof choice.message.reasoning_content, 'string', 'the R1 template opens <think>: reasoning_content');
assert.ok(['stop', 'length'].includes(choice.finish_reason));
assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
assert.ok(r.usage.completion_tokens_details.reasoning_tokens > 0);

// The same request streamed gives the same text, reasoning apart from content.
const stream = await client.chat.completions.create({
  model, messages, max_tokens: 16, seed: 7, stream: true, stream_options: { include_usage: true },
});
let reasoning = '', content = '', finish = null, usage = null, chunks = 0;
for await (const chunk of stream) {
  assert.equal(chunk.object, 'chat.completion.chunk');
  chunks += 1;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta.reasoning_content) reasoning += c.delta.reasoning_content;
    if (c.delta.content) content += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
}
assert.ok(chunks >= 3, `${chunks} chunks`);
assert.equal(reasoning, choice.message.reasoning_content);
assert.equal(content, choice.message.content ?? '');
assert.equal(finish, choice.finish_reason);
assert.equal(usage.completion_tokens, r.usage.completion_tokens);

// n > 1: independent samples (seed + i), indexed.
const rn = await client.chat.completions.create({ model, messages, max_tokens: 8, n: 3, seed: 1 });
assert.deepEqual(rn.choices.map((c) => c.index), [0, 1, 2]);

// Completions with logprobs.
const comp = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, seed: 3, logprobs: 2 });
assert.equal(comp.object, 'text_completion');
assert.equal(typeof comp.choices[0].text, 'string');
assert.equal(comp.choices[0].logprobs.tokens.length, comp.usage.completion_tokens);
assert.equal(comp.choices[0].logprobs.top_logprobs[0] !== null, true);

// Bad input: the SDK's typed errors, with OpenAI's error fields.
await assert.rejects(client.chat.completions.create({ model, messages: [], max_tokens: 4 }), (e) => {
  assert.ok(e instanceof OpenAI.BadRequestError, String(e));
  assert.equal(e.status, 400);
  assert.equal(e.param, 'messages');
  assert.equal(e.type, 'invalid_request_error');
  return true;
});
await assert.rejects(client.chat.completions.create({ model, messages, temperature: 5 }), (e) => e.status === 400);
await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages }), (e) => e.status === 404);

// A client that stops reading mid-stream: the server cancels the request and frees its cache.
const ac = new AbortController();
const long = await client.chat.completions.create({ model, messages, max_tokens: 3000, stream: true }, { signal: ac.signal });
let got = 0;
try {
  for await (const chunk of long) {
    got += 1;
    if (got === 2) ac.abort();
  }
} catch (e) {
  assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', String(e));
}
let freed = false;
for (let i = 0; i < 200 && !freed; i += 1) {
  freed = (await metric('dsrt_kv_cache_blocks_used')) === 0 && (await metric('dsrt_requests_running')) === 0;
  if (!freed) await new Promise((res) => setTimeout(res, 100));
}
assert.ok(freed, 'the aborted stream still holds cache blocks');
assert.equal(await metric('dsrt_requests_cancelled_total{reason="disconnect"}'), 1);

console.log('openai client: all checks passed');
