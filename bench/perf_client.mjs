// bench/perf_client.mjs: Baseten's own performance client
// (@basetenlabs/performance-client, a Rust core over tokio and reqwest,
// pinned in package.json with its linux-x64-gnu binding) on the batch
// scenario of bench/run.lua: one batchPost of N chat payloads, C in flight.
//
//   node perf_client.mjs BASE_URL N C    BASE_URL without /v1: the binding
//                                        speaks HTTP/2 in cleartext (h2c,
//                                        prior knowledge), so run.lua gives
//                                        it nginx's second, `http2` port
//
// Prints one JSON line like the other consumers: requests, failed, tokens
// (summed from each response's usage), cpu (process.cpuUsage(): user+sys
// of every thread, tokio's included, around batchPost), wall, rss_kb
// (VmHWM: the payloads and the results are all held, as batchPost keeps
// them).
import { readFileSync } from 'node:fs';
import { PerformanceClient } from '@basetenlabs/performance-client';

const [baseURL, nArg, cArg] = process.argv.slice(2);
const n = Number(nArg || 0);
const pool = Number(cArg || 64);
const messages = [{ role: 'user', content: 'go' }];

const cpuSeconds = (u) => (u.user + u.system) / 1e6;
function peakRssKb() {
  const m = readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\s*(\d+)/);
  return m ? Number(m[1]) : -1;
}

const client = new PerformanceClient(baseURL, 'bench');
// warm-up, as the other node consumer does: connections and the runtime
await client.batchPost('/v1/chat/completions', Array.from({ length: 50 }, () => ({ model: 'test/bench', messages })),
  pool, 60);
const payloads = Array.from({ length: n }, () => ({ model: 'test/bench', messages }));
const cpu0 = process.cpuUsage();
const wall0 = performance.now();
let failed = 0;
let tokens = 0;
let done = 0;
try {
  const resp = await client.batchPost('/v1/chat/completions', payloads, pool, 60);
  for (const r of resp.data) {
    done++;
    if (r && r.usage) tokens += r.usage.total_tokens;
    else failed++;
  }
} catch (e) {
  process.stderr.write(`batchPost failed: ${e.message}\n`);
  failed = n;
}
const out = { requests: done, failed, tokens, cpu: cpuSeconds(process.cpuUsage(cpu0)),
              wall: (performance.now() - wall0) / 1e3, rss10k_kb: -1, rss_kb: peakRssKb() };
console.log(JSON.stringify(out));
