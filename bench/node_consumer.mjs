// bench/node_consumer.mjs: the official openai-node SDK on the same streams
// and chats as bench/consumer.lua (installed into bench/node_modules by
// bench/run.lua from package-lock.json).
//
//   node node_consumer.mjs stream BASE_URL     one streamed chat
//   node node_consumer.mjs chat BASE_URL N     N blocking chats
//   node node_consumer.mjs batch BASE_URL N C  N chats, a pool of C at a time
//                                              (C workers, each awaiting one
//                                              chat after another)
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
} else if (mode === 'batch') {
  const pool = Number(process.argv[5] || 64);
  let next = 0;
  let done = 0;
  let failed = 0;
  let tokens = 0;
  let rss10k = -1;
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const worker = async () => {
    while (next < n) {
      next++;
      try {
        const resp = await client.chat.completions.create({ model: 'test/bench', messages });
        tokens += resp.usage.total_tokens;
      } catch {
        failed++;
      }
      if (++done === 10000) rss10k = Math.round(process.memoryUsage.rss() / 1024);
    }
  };
  await Promise.all(Array.from({ length: pool }, worker));
  out = { requests: done, failed, tokens, cpu: cpuSeconds(process.cpuUsage(cpu0)), wall: (performance.now() - wall0) / 1e3,
          rss10k_kb: rss10k };
} else {
  process.stderr.write('usage: node_consumer.mjs stream|chat BASE_URL [N] | batch BASE_URL N C\n');
  process.exit(2);
}
out.rss_kb = peakRssKb();
console.log(JSON.stringify(out));
