// The official `openai` Node SDK against the gateway (node --test).
//
// Starts its own gateway process in DEMO mode: `$SWITCHYARD_BIN` (default
// target/debug/switchyard), clean environment (PATH and HOME only), a
// temporary working directory, port 0 (address read from the banner).
// Expected texts follow crates/mock/src/reply.rs.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, accessSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEMO_KEY = 'sk-switchyard-demo';
const ALIASES = ['demo-openai', 'demo-anthropic', 'demo-gemini'];

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } },
      required: ['city'],
    },
  },
};
const TIME_TOOL = {
  type: 'function',
  function: {
    name: 'get_time',
    description: 'Current time in a timezone',
    parameters: { type: 'object', properties: { timezone: { type: 'string' } }, required: ['timezone'] },
  },
};

const said = (alias, text) => `[${alias}] You said: ${text}`;
const toolReturned = (alias, name, content) =>
  `[${alias}] Tool ${name} returned: ${alias === 'demo-gemini' ? JSON.stringify({ output: content }) : content}`;
const user = (text) => [{ role: 'user', content: text }];

let proc;
let workdir;
let baseURL;
let client;

function startGateway() {
  let bin = process.env.SWITCHYARD_BIN || join(REPO, 'target', 'debug', 'switchyard');
  if (!isAbsolute(bin)) bin = join(REPO, bin);
  accessSync(bin, constants.X_OK);
  workdir = mkdtempSync(join(tmpdir(), 'switchyard-node-'));
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? workdir };
  proc = spawn(bin, ['--listen', '127.0.0.1:0'], { cwd: workdir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr.resume(); // drain
  return new Promise((resolvePromise, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`gateway did not start; stdout:\n${out}`)), 30_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited early (${code}); stdout:\n${out}`));
    });
    proc.stdout.on('data', (chunk) => {
      out += chunk.toString();
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        proc.stdout.resume();
        resolvePromise(m[1].replace(/\/$/, ''));
      }
    });
  });
}

before(async () => {
  baseURL = await startGateway();
  client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: DEMO_KEY, maxRetries: 0, timeout: 20_000 });
});

after(() => {
  if (proc && proc.exitCode === null) proc.kill('SIGKILL');
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

async function drain(stream) {
  const chunks = [];
  let text = '';
  let finish = null;
  const calls = new Map();
  for await (const ch of stream) {
    chunks.push(ch);
    for (const c of ch.choices) {
      if (c.delta?.content) text += c.delta.content;
      for (const tc of c.delta?.tool_calls ?? []) {
        const slot = calls.get(tc.index) ?? { id: null, name: '', arguments: '', fragments: 0 };
        if (tc.id) slot.id = tc.id;
        if (tc.function?.name) slot.name += tc.function.name;
        if (tc.function?.arguments) {
          slot.arguments += tc.function.arguments;
          slot.fragments += 1;
        }
        calls.set(tc.index, slot);
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  const ordered = [...calls.keys()].sort((a, b) => a - b).map((k) => calls.get(k));
  return { chunks, text, finish, calls: ordered };
}

for (const alias of ALIASES) {
  describe(alias, () => {
    test('non-streaming chat', async () => {
      const r = await client.chat.completions.create({ model: alias, messages: user('Hello from Node') });
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.choices.length, 1);
      assert.equal(r.choices[0].finish_reason, 'stop');
      assert.equal(r.choices[0].message.role, 'assistant');
      assert.equal(r.choices[0].message.content, said(alias, 'Hello from Node'));
      assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
      assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    });

    test('streaming chat with usage', async () => {
      const prompt = 'Stream a few words from Node please';
      const full = await client.chat.completions.create({ model: alias, messages: user(prompt) });
      const stream = await client.chat.completions.create({
        model: alias,
        messages: user(prompt),
        stream: true,
        stream_options: { include_usage: true },
      });
      const { chunks, text, finish } = await drain(stream);
      assert.equal(text, full.choices[0].message.content);
      assert.equal(text, said(alias, prompt));
      assert.equal(finish, 'stop');
      const last = chunks.at(-1);
      assert.deepEqual(last.choices, []);
      assert.equal(last.usage.prompt_tokens, full.usage.prompt_tokens);
      assert.equal(last.usage.completion_tokens, full.usage.completion_tokens);
      for (const ch of chunks.slice(0, -1)) assert.ok(ch.usage == null);
    });

    test('streaming chat without usage', async () => {
      const stream = await client.chat.completions.create({ model: alias, messages: user('no usage'), stream: true });
      const { chunks, text } = await drain(stream);
      assert.equal(text, said(alias, 'no usage'));
      for (const ch of chunks) {
        assert.ok(ch.usage == null);
        assert.equal(ch.choices.length, 1);
      }
    });

    test('stream helper: finalChatCompletion and content events', async () => {
      const stream = client.chat.completions.stream({ model: alias, messages: user('helper please') });
      let deltas = '';
      stream.on('content', (delta) => {
        deltas += delta;
      });
      const final = await stream.finalChatCompletion();
      assert.equal(deltas, said(alias, 'helper please'));
      assert.equal(final.choices[0].message.content, said(alias, 'helper please'));
      assert.equal(final.choices[0].finish_reason, 'stop');
    });

    test('parallel tool calls streamed in fragments', async () => {
      const stream = await client.chat.completions.create({
        model: alias,
        messages: user('Weather and time in parallel please'),
        tools: [WEATHER_TOOL, TIME_TOOL],
        stream: true,
      });
      const { text, finish, calls } = await drain(stream);
      assert.equal(finish, 'tool_calls');
      assert.equal(text, '');
      assert.deepEqual(
        calls.map((c) => [c.name, JSON.parse(c.arguments)]),
        [
          ['get_weather', { city: 'demo' }],
          ['get_time', { timezone: 'demo' }],
        ],
      );
      assert.ok(calls.every((c) => c.id));
      assert.notEqual(calls[0].id, calls[1].id);
      assert.ok(calls.reduce((n, c) => n + c.fragments, 0) >= 2);
    });

    test('stream helper with tools: finalChatCompletion', async () => {
      const stream = client.chat.completions.stream({
        model: alias,
        messages: user('Weather please'),
        tools: [WEATHER_TOOL],
        tool_choice: 'required',
      });
      const final = await stream.finalChatCompletion();
      const msg = final.choices[0].message;
      assert.equal(final.choices[0].finish_reason, 'tool_calls');
      assert.equal(msg.tool_calls.length, 1);
      assert.equal(msg.tool_calls[0].function.name, 'get_weather');
      assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), { city: 'demo' });
    });

    test('tool result round trip', async () => {
      const first = await client.chat.completions.create({
        model: alias,
        messages: user('Weather in Paris?'),
        tools: [WEATHER_TOOL],
      });
      const call = first.choices[0].message.tool_calls[0];
      const r = await client.chat.completions.create({
        model: alias,
        tools: [WEATHER_TOOL],
        messages: [
          ...user('Weather in Paris?'),
          { role: 'assistant', content: null, tool_calls: [call] },
          { role: 'tool', tool_call_id: call.id, content: 'sunny' },
        ],
      });
      assert.equal(r.choices[0].finish_reason, 'stop');
      assert.equal(r.choices[0].message.content, toolReturned(alias, 'get_weather', 'sunny'));
    });

    test('runTools streaming loop', async () => {
      const seen = [];
      const runner = client.chat.completions.runTools({
        model: alias,
        stream: true,
        messages: user('Weather in Paris?'),
        tools: [
          {
            type: 'function',
            function: {
              name: 'get_weather',
              parameters: WEATHER_TOOL.function.parameters,
              parse: JSON.parse,
              function: (args) => {
                seen.push(args);
                return 'sunny';
              },
            },
          },
        ],
      });
      const content = await runner.finalContent();
      assert.deepEqual(seen, [{ city: 'demo' }]);
      assert.equal(content, toolReturned(alias, 'get_weather', 'sunny'));
    });

    test('image_url parts (https and data:)', async () => {
      const r = await client.chat.completions.create({
        model: alias,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Two pictures' },
              { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
              {
                type: 'image_url',
                image_url: {
                  url: 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
                },
              },
            ],
          },
        ],
      });
      assert.equal(r.choices[0].message.content, said(alias, 'Two pictures') + ' (2 images)');
    });

    test('json_schema response format', async () => {
      const r = await client.chat.completions.create({
        model: alias,
        messages: user('JSON please'),
        response_format: {
          type: 'json_schema',
          json_schema: {
            name: 'w',
            strict: true,
            schema: {
              type: 'object',
              properties: { city: { type: 'string' }, n: { type: 'integer' } },
              required: ['city', 'n'],
              additionalProperties: false,
            },
          },
        },
      });
      assert.deepEqual(JSON.parse(r.choices[0].message.content), { city: 'demo', n: 1 });
    });

    test('max_completion_tokens -> length', async () => {
      const prompt = 'Tell me a long story about dragons and castles';
      const r = await client.chat.completions.create({ model: alias, messages: user(prompt), max_completion_tokens: 3 });
      assert.equal(r.choices[0].finish_reason, 'length');
      assert.equal(r.choices[0].message.content, said(alias, prompt).slice(0, 12));
    });

    test('malformed input -> BadRequestError', async () => {
      await assert.rejects(
        client.chat.completions.create({ model: alias, messages: [{ role: 'wizard', content: 'hi' }] }),
        (e) => e instanceof OpenAI.BadRequestError && e.status === 400,
      );
    });

    test('withResponse exposes gateway headers', async () => {
      const { data, response } = await client.chat.completions
        .create({ model: alias, messages: user('headers') })
        .withResponse();
      assert.ok(response.headers.get('x-request-id'));
      assert.equal(response.headers.get('x-switchyard-provider'), alias);
      assert.equal(data.choices[0].message.content, said(alias, 'headers'));
    });
  });
}

describe('n', () => {
  for (const alias of ['demo-openai', 'demo-gemini']) {
    test(`n=2 via ${alias}`, async () => {
      const r = await client.chat.completions.create({ model: alias, messages: user('two'), n: 2 });
      assert.deepEqual(
        r.choices.map((c) => [c.index, c.message.content]),
        [
          [0, said(alias, 'two')],
          [1, said(alias, 'two')],
        ],
      );
    });
  }
  test('n=2 via demo-anthropic is a BadRequestError', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'demo-anthropic', messages: user('two'), n: 2 }),
      (e) => e instanceof OpenAI.BadRequestError && /\bn\b/.test(e.message),
    );
  });
});

describe('embeddings', () => {
  test('default encoding (base64 requested by the SDK)', async () => {
    const r = await client.embeddings.create({ model: 'demo-embed', input: 'hello world' });
    assert.equal(r.data.length, 1);
    const v = r.data[0].embedding;
    assert.ok(Array.isArray(v) && v.length > 0);
    assert.ok(v.every((x) => typeof x === 'number'));
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-3);
  });

  test('float encoding equals base64', async () => {
    const a = await client.embeddings.create({ model: 'demo-embed', input: ['alpha', 'beta'] });
    const b = await client.embeddings.create({ model: 'demo-embed', input: ['alpha', 'beta'], encoding_format: 'float' });
    assert.deepEqual(
      b.data.map((d) => d.index),
      [0, 1],
    );
    for (let i = 0; i < 2; i++) {
      assert.equal(a.data[i].embedding.length, b.data[i].embedding.length);
      a.data[i].embedding.forEach((x, j) => assert.ok(Math.abs(x - b.data[i].embedding[j]) < 1e-6));
    }
  });
});

describe('models and errors', () => {
  test('models.list contains the aliases', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    for (const a of [...ALIASES, 'demo-embed', 'demo']) assert.ok(ids.includes(a), `${a} in ${ids}`);
  });

  test('unknown model -> NotFoundError model_not_found', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: user('hi') }),
      (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
    );
  });

  test('unknown model streaming -> NotFoundError', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: user('hi'), stream: true }),
      (e) => e instanceof OpenAI.NotFoundError,
    );
  });

  test('bad key -> AuthenticationError', async () => {
    const bad = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    await assert.rejects(
      bad.chat.completions.create({ model: 'demo-openai', messages: user('hi') }),
      (e) => e instanceof OpenAI.AuthenticationError && e.status === 401,
    );
    await assert.rejects(
      bad.embeddings.create({ model: 'demo-embed', input: 'hi' }),
      (e) => e instanceof OpenAI.AuthenticationError,
    );
  });
});
