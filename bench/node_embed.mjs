// bench/node_embed.mjs: @basetenlabs/performance-client (pinned in
// bench/package.json) on the same embeddings as bench/embed_consumer.lua.
//
//   node node_embed.mjs BASE_URL N BATCH C    embed N texts of ~200 characters
//
// BASE_URL is the root the client adds /v1/embeddings to. Its encoding is
// "float": the performance client returns no vectors for base64 (0.0.10's
// src/lib.rs). Prints one JSON line like the Lua consumer; cpu is
// process.cpuUsage() user+sys (every thread: its tokio runtime too) around
// the call only; the vectors are kept until after the RSS is read.
import { readFileSync } from 'node:fs';
import { PerformanceClient } from '@basetenlabs/performance-client';

const [baseUrl, nArg, batchArg, cArg] = process.argv.slice(2);
const n = Number(nArg), batch = Number(batchArg), c = Number(cArg);

// the texts of embed_consumer.lua, built by the same rule
const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet',
  'kilo', 'lima', 'mike', 'november', 'oscar', 'papa', 'quebec', 'romeo', 'sierra', 'tango'];
function texts(count) {
  const out = [];
  for (let i = 1; i <= count; i++) {
    const parts = ['text ' + i];
    let len = 0, k = i;
    while (len < 190) {
      k = (k * 1103515245 + 12345) % 2147483648;
      const w = WORDS[k % WORDS.length];
      parts.push(w);
      len += w.length + 1;
    }
    out.push(parts.join(' '));
  }
  return out;
}

function statusKb(field) {
  const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(field + ':\\s*(\\d+)'));
  return m ? Number(m[1]) : -1;
}

const client = new PerformanceClient(baseUrl, 'bench');
const input = texts(n);
const cpu0 = process.cpuUsage();
const wall0 = performance.now();
const resp = await client.embed(input, 'test/bench', 'float', null, null, c, batch, 600, null, null);
const wall = (performance.now() - wall0) / 1000;
const u = process.cpuUsage(cpu0);
const data = resp.data;
console.log(JSON.stringify({
  count: data.length, dims: data[0].embedding.length, cpu: (u.user + u.system) / 1e6, wall,
  rss_kb: statusKb('VmHWM'),
}));
