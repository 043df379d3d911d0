// bench/node_consumer.mjs: the official openai-node SDK on the same streams
// and chats as bench/consumer.lua (installed into bench/node_modules by
// bench/run.lua from package-lock.json).
//
//   node node_consumer.mjs stream BASE_URL     one streamed chat
//   node node_consumer.mjs chat BASE_URL N     N blocking chats
//
// Prints one JSON line like the other consumers; cpu is
// process.cpuUsage() user+sys around the measured part only.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const [mode, baseURL, nArg] = process.argv.slice(2);
const n = Number(nArg || 0);
const WARMUP = 50;
const client = new OpenAI({ baseURL, apiKey: 'bench', maxRetries: 0 });
const messages = [{ role: 'user', content: 'go' }];

const cpuSeconds = (u) => (u.user + u.system) / 1e6;

function peakRssKb() {
  const m = readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\s*(\d+)/);
  return m ? Number(m[1]) : -1;
}

let out;
if (mode === 'stream') {
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  let chunks = 0;
  let chars = 0;
  const stream = await client.chat.completions.create({ model: 'test/bench', messages, stream: true });
  for await (const chunk of stream) {
    chunks++;
    const s = chunk.choices[0]?.delta?.content;
    if (typeof s === 'string') chars += s.length;
  }
  out = { chunks, chars, cpu: cpuSeconds(process.cpuUsage(cpu0)), wall: (performance.now() - wall0) / 1e3 };
} else if (mode === 'chat') {
  let chars = 0;
  for (let i = 0; i < WARMUP; i++) await client.chat.completions.create({ model: 'test/bench', messages });
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  for (let i = 0; i < n; i++) {
    const resp = await client.chat.completions.create({ model: 'test/bench', messages });
    chars += resp.choices[0].message.content.length;
  }
  out = { requests: n, chars, cpu: cpuSeconds(process.cpuUsage(cpu0)), wall: (performance.now() - wall0) / 1e3 };
} else {
  process.stderr.write('usage: node_consumer.mjs stream|chat BASE_URL [N]\n');
  process.exit(2);
}
out.rss_kb = peakRssKb();
console.log(JSON.stringify(out));
