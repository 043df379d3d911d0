// bench/partial_json.mjs: the peers' way of watching streamed JSON, for
// bench/partial.lua: npm partial-json (pinned in bench/package.json) called
// on the growing prefix after each piece, as openai-node does.
//
//   node bench/partial_json.mjs FILE PIECE_BYTES
//
// Prints one JSON line: CPU seconds (user+sys, process.cpuUsage) around the
// loop, the number of parses, and whether the last parse equals JSON.parse.
import { readFileSync } from "node:fs";
import { parse, Allow } from "partial-json";

const [file, pieceArg] = process.argv.slice(2);
const text = readFileSync(file, "utf8");
const piece = Number(pieceArg);
const t0 = process.cpuUsage();
let prefix = "", value, parses = 0;
for (let at = 0; at < text.length; at += piece) {
  prefix += text.slice(at, at + piece);
  value = parse(prefix, Allow.ALL);
  parses++;
}
const t = process.cpuUsage(t0);
const same = JSON.stringify(value) === JSON.stringify(JSON.parse(text));
console.log(JSON.stringify({ cpu: (t.user + t.system) / 1e6, parses, same }));
