import { createRandom } from '@tracemark/core';
import { describe, expect, it } from 'vitest';
import { jsonBodyStream, jsonPieces, PIECE_CHARS } from './json-body.ts';

/** A random JSON-like value: objects, arrays short and long, strings with any character, numbers, … */
function randomValue(random: ReturnType<typeof createRandom>, depth: number): unknown {
  const kind = random.nextUint32() % (depth > 3 ? 6 : 9);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return random.nextFloat() < 0.5;
    case 2:
      return [0, -0, 1.5e-300, -Math.log(random.nextFloat() + 1e-9), Number.NaN, Number.NEGATIVE_INFINITY][
        random.nextUint32() % 6
      ];
    case 3:
      return String.fromCharCode(
        ...Array.from({ length: random.nextUint32() % 12 }, () => random.nextUint32() % 0x10000),
      );
    case 4:
      return undefined;
    case 5:
      return 'plain';
    case 6:
    case 7: {
      const length = random.nextFloat() < 0.3 ? 30 + (random.nextUint32() % 200) : random.nextUint32() % 5;
      return Array.from({ length }, () => randomValue(random, depth + 1));
    }
    default: {
      const out: Record<string, unknown> = {};
      for (let i = random.nextUint32() % 6; i > 0; i--)
        out[`k${random.nextUint32() % 10}\u00e9"`] = randomValue(random, depth + 1);
      return out;
    }
  }
}

describe('jsonPieces', () => {
  it("writes JSON.stringify's text, character for character (property, 300 random values)", () => {
    const random = createRandom(7);
    for (let round = 0; round < 300; round++) {
      const value = randomValue(random, 0);
      expect([...jsonPieces(value)].join('')).toBe(JSON.stringify(value) ?? 'null');
    }
  });

  it('splits long arrays at any depth and leaves out undefined fields, as JSON.stringify does', () => {
    const body = {
      id: 'chatcmpl-1',
      skipped: undefined,
      choices: [
        {
          index: 0,
          logprobs: {
            content: Array.from({ length: 100 }, (_, i) => ({
              token: `t${i}`,
              logprob: -i / 7,
              bytes: [116, i],
            })),
          },
        },
      ],
      usage: { total_tokens: 100 },
    };
    const pieces = [...jsonPieces(body)];
    expect(pieces.length).toBeGreaterThan(5);
    expect(pieces.join('')).toBe(JSON.stringify(body));
    expect(pieces.join('')).not.toContain('skipped');
  });
});

describe('typed arrays', () => {
  it('are written as the arrays of their numbers', () => {
    const tokens = Uint32Array.from({ length: 10_000 }, (_, i) => (i * 7919) % 100_277);
    const record = {
      id: 'iss_1',
      outputTokens: tokens,
      empty: new Float64Array(0),
      small: new Int8Array([-1, 2]),
    };
    const expected = JSON.stringify({
      id: 'iss_1',
      outputTokens: Array.from(tokens),
      empty: [],
      small: [-1, 2],
    });
    expect([...jsonPieces(record)].join('')).toBe(expected);
    expect([...jsonPieces([record, { outputTokens: null }])].join('')).toBe(
      `[${expected},{"outputTokens":null}]`,
    );
  });
});

describe('jsonBodyStream', () => {
  it('gives the same bytes, in pieces, with the event loop free between them', async () => {
    // about 6 MB of JSON, as a body of 65,536 log-probabilities
    const body = {
      choices: Array.from({ length: 8 }, (_, index) => ({
        index,
        logprobs: {
          content: Array.from({ length: 400 }, (_, i) => ({
            token: `\u00e9${i}`,
            logprob: -i / 3,
            top_logprobs: Array.from({ length: 20 }, (_, j) => ({
              token: `x${j}`,
              logprob: -j,
              bytes: [120, j],
            })),
          })),
        },
      })),
    };
    const expected = JSON.stringify(body);
    expect(expected.length).toBeGreaterThan(20 * PIECE_CHARS);
    let turns = 0;
    const ticking = setInterval(() => {
      turns++;
    }, 0);
    const chunks: Buffer[] = [];
    for await (const chunk of jsonBodyStream(body)) chunks.push(chunk as Buffer);
    clearInterval(ticking);
    expect(Buffer.concat(chunks).toString('utf8')).toBe(expected);
    expect(chunks.length).toBeGreaterThan(10);
    // timers ran while the body was written: it did not hold the event loop from start to end
    expect(turns).toBeGreaterThan(5);
  });
});
