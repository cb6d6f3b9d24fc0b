// One SipRound (Aumasson and Bernstein 2012) as WebAssembly text, shared by the generators of
// packages/core/wasm and packages/extraction/wasm. `states` names the interleaved states (locals
// $<p>0..$<p>3 for each prefix p); `vector` uses i64x2 lanes instead of i64.

/** rotl of every 64-bit lane of the v128 expression x by r. */
function vectorRotl(x, r) {
  if (r === 32) return `(i8x16.shuffle 4 5 6 7 0 1 2 3 12 13 14 15 8 9 10 11 ${x} ${x})`;
  if (r === 16) return `(i8x16.shuffle 6 7 0 1 2 3 4 5 14 15 8 9 10 11 12 13 ${x} ${x})`;
  return `(v128.or (i64x2.shl ${x} (i32.const ${r})) (i64x2.shr_u ${x} (i32.const ${64 - r})))`;
}

function steps(p, vector) {
  const get = (i) => `(local.get $${p}${i})`;
  const add = (a, b) => (vector ? `(i64x2.add ${get(a)} ${get(b)})` : `(i64.add ${get(a)} ${get(b)})`);
  const rotl = (a, r) => (vector ? vectorRotl(get(a), r) : `(i64.rotl ${get(a)} (i64.const ${r}))`);
  const xor = (x, b) => (vector ? `(v128.xor ${x} ${get(b)})` : `(i64.xor ${x} ${get(b)})`);
  const set = (i, value) => `(local.set $${p}${i} ${value})`;
  return [
    set(0, add(0, 1)),
    set(1, xor(rotl(1, 13), 0)),
    set(0, rotl(0, 32)),
    set(2, add(2, 3)),
    set(3, xor(rotl(3, 16), 2)),
    set(0, add(0, 3)),
    set(3, xor(rotl(3, 21), 0)),
    set(2, add(2, 1)),
    set(1, xor(rotl(1, 17), 2)),
    set(2, rotl(2, 32)),
  ];
}

/** `count` SipRounds over the given states, their steps interleaved for instruction-level parallelism. */
export function sipRounds(count, states = ['v'], vector = false) {
  const lists = states.map((p) => steps(p, vector));
  const one = lists[0].map((_, i) => lists.map((list) => `\n    ${list[i]}`).join('')).join('');
  return one.repeat(count);
}

/**
 * The body of a SipHash-2-4 function after its state $v0..$v3 is initialized: absorbs $len bytes at
 * $p (locals $m, $end, $left, $i), finalizes, and leaves the 64-bit result on the stack.
 */
export function sipMessage() {
  return `(local.set $end (i32.add (local.get $p) (i32.and (local.get $len) (i32.const -8))))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $m (i64.load (local.get $p)))
        (local.set $v3 (i64.xor (local.get $v3) (local.get $m)))
        ${sipRounds(2)}
        (local.set $v0 (i64.xor (local.get $v0) (local.get $m)))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $blocks)))
    (local.set $m (i64.shl (i64.extend_i32_u (local.get $len)) (i64.const 56)))
    (local.set $left (i32.and (local.get $len) (i32.const 7)))
    (local.set $i (i32.const 0))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $left)))
        (local.set $m (i64.or (local.get $m)
          (i64.shl (i64.load8_u (i32.add (local.get $p) (local.get $i)))
                   (i64.extend_i32_u (i32.shl (local.get $i) (i32.const 3))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail)))
    (local.set $v3 (i64.xor (local.get $v3) (local.get $m)))
    ${sipRounds(2)}
    (local.set $v0 (i64.xor (local.get $v0) (local.get $m)))
    (local.set $v2 (i64.xor (local.get $v2) (i64.const 0xff)))
    ${sipRounds(4)}
    (i64.xor (i64.xor (local.get $v0) (local.get $v1)) (i64.xor (local.get $v2) (local.get $v3)))`;
}
