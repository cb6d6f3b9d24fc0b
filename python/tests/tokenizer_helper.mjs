// Decodes and encodes token ids with @tracemark/tokenizers (the built package), for the Python
// round trip. Reads one JSON request on stdin, writes one JSON answer on stdout:
//   {"tokenizer": "cl100k_base", "words": true, "decode": [[ids], …], "encode": ["text", …], "reencode": true}
// → {"words": [ids of tokens that are a space and 3–12 lowercase ASCII letters], "decode": [...], "encode": [...]}
// With "reencode", "encode" holds the encoding of each decoded text (one process instead of two).
import { readFileSync } from 'node:fs';

const { getTokenizer } = await import(
  new URL('../../packages/tokenizers/dist/index.js', import.meta.url).href
);
const request = JSON.parse(readFileSync(0, 'utf8'));
const tokenizer = getTokenizer(request.tokenizer ?? 'cl100k_base');
const answer = {};
if (request.words) {
  const ids = Array.from({ length: tokenizer.ordinaryTokenCount }, (_, id) => id);
  const pieces = tokenizer.decodeTokens(ids);
  answer.words = ids.filter((id) => /^ [a-z]{3,12}$/.test(pieces[id]));
}
if (request.decode) answer.decode = request.decode.map((ids) => tokenizer.decode(ids));
const texts = request.reencode ? answer.decode : request.encode;
if (texts) answer.encode = texts.map((text) => Array.from(tokenizer.encode(text)));
process.stdout.write(JSON.stringify(answer));
