/*
 * cl100k_base's encoding of ASCII pieces, compiled to WebAssembly (wasm/generate.mjs). The JavaScript
 * encoder (src/byte-pair-encoder.ts) hands it the UTF-8 bytes of a whole text; it encodes piece after
 * piece from a byte offset, as long as each piece is one that src/ascii-pieces.ts's scanner finds without
 * the regular expression and of at most ARRAY_MERGE_LIMIT bytes, and returns where it stopped. The
 * JavaScript encoder takes the piece there (a non-ASCII or a long one) and calls again. Before a
 * non-ASCII character every byte is a character, so byte offsets and UTF-16 offsets move together.
 *
 * The scanner is cl100kAsciiPieceEnd, the merge mergeOnArrays and the cache MergeCache's rule, step for
 * step; the token table is its own (built by `setup` from the same tokens), hashed a word at a time. The
 * tests compare the two paths id for id (src/wasm-encoder.test.ts).
 *
 * Reads run up to 7 bytes past a piece or a position (whole words, masked): the caller leaves 8 bytes
 * of room after the text and after the tokens' bytes, and puts SENTINEL right after the text.
 */

typedef unsigned char u8;
typedef int i32;
typedef unsigned int u32;
/* An address: 32 bits in WebAssembly (the exports' i32), a pointer's width elsewhere (native tests). */
typedef __SIZE_TYPE__ addr;

#define NO_TOKEN (-1)
#define NO_RANK 0x7fffffff
#define NOT_ASCII (-1)
#define LENGTH_SHIFT 21
#define ID_MASK ((1u << LENGTH_SHIFT) - 1)
#define MAX_TOKEN_BYTES 2047
#define ARRAY_MERGE_LIMIT 64
#define CACHED_PIECE_BYTES 24
#define CACHED_PIECE_TOKENS 12
#define CACHE_ENTRIES 32768
/* After the text: a byte UTF-8 never holds, which the scanner reads as the end. */
#define SENTINEL 0xff

#define EXPORT(name) __attribute__((export_name(name)))

/*
 * The tables: open addressing, a slot per 16 bytes: id | length << 21 (0: empty), the first 8 bytes as
 * two words (zero-padded) and the hash. A token of up to 8 bytes is its length and words; a longer one
 * also compares the rest of its bytes.
 */
typedef struct {
  u32 held;
  u32 head;
  u32 tail;
  u32 hash;
} slot;

static slot *slots;
static u32 mask;
static const i32 *byte_ids;
static const i32 *pair_ids;
static const u8 *token_bytes;
static const u32 *offsets;
static u32 longest_token;

/* The merge cache: per entry its hash and length | ids << 8 (0: empty), its bytes and its ids. */
static u32 cache_keys[2 * CACHE_ENTRIES];
static u8 cache_bytes[CACHE_ENTRIES * CACHED_PIECE_BYTES];
static u32 cache_ids[CACHE_ENTRIES * CACHED_PIECE_TOKENS];

/* Scratch of the merge on arrays. */
static i32 starts[ARRAY_MERGE_LIMIT + 1];
static i32 ranks[ARRAY_MERGE_LIMIT + 1];
static i32 ids[ARRAY_MERGE_LIMIT + 1];

/* The ids written by the last `encode`. */
static u32 produced;

#ifdef __wasm__
extern u8 __heap_base;
static u32 heap_top;

/* `size` bytes of fresh (zeroed) memory, 16-byte aligned, growing the memory as needed; 0 if it cannot. */
EXPORT("reserve") u32 reserve(u32 size) {
  if (heap_top == 0) heap_top = (u32)&__heap_base;
  u32 at = (heap_top + 15) & ~15u;
  u32 end = at + size;
  if (end < at) return 0;
  u32 have = (u32)__builtin_wasm_memory_size(0) * 65536u;
  if (end > have) {
    u32 pages = (end - have + 65535u) / 65536u;
    if (__builtin_wasm_memory_grow(0, pages) == (addr)-1) return 0;
  }
  heap_top = end;
  return at;
}
#endif

/* ---- words and hashes ---- */

static u32 load_word(const u8 *p) {
  u32 word;
  __builtin_memcpy(&word, p, 4);
  return word;
}

/* The little-endian word of p[0 … min(4, bytes)), zero-padded. */
static u32 word_of(const u8 *p, u32 bytes) {
  u32 word = load_word(p);
  return bytes >= 4 ? word : word & ((1u << (8 * bytes)) - 1);
}

/* The hash of the bytes p[0 … length), whose first two words are head and tail. */
static u32 hash_of(const u8 *p, u32 length, u32 head, u32 tail) {
  u32 hash = (head * 0x9e3779b1u) ^ (tail * 0x85ebca77u) ^ (length * 0xc2b2ae3du);
  for (u32 k = 8; k < length; k += 4) hash = (hash ^ word_of(p + k, length - k)) * 0x27d4eb2fu;
  hash ^= hash >> 15;
  hash *= 0x2c1b3c6du;
  return hash ^ (hash >> 12);
}

/* ---- the table ---- */

/*
 * Builds the tables of the tokens 0 … count − 1 (token id is bytes[offsets[id] … offsets[id + 1]), an
 * empty one is skipped) in `capacity` zeroed slots at slots_at (a power of two, at least twice the
 * tokens). Returns 0 when a token is too long for a slot.
 */
EXPORT("setup")
i32 setup(addr slots_at, u32 capacity, addr bytes_at, addr offsets_at, u32 count, addr byte_ids_at,
          addr pair_ids_at) {
  slots = (slot *)slots_at;
  mask = capacity - 1;
  token_bytes = (const u8 *)bytes_at;
  offsets = (const u32 *)offsets_at;
  byte_ids = (const i32 *)byte_ids_at;
  pair_ids = (const i32 *)pair_ids_at;
  longest_token = 0;
  for (u32 id = 0; id < count; id++) {
    const u8 *p = token_bytes + offsets[id];
    u32 length = offsets[id + 1] - offsets[id];
    if (length == 0) continue;
    if (length > MAX_TOKEN_BYTES) return 0;
    if (length > longest_token) longest_token = length;
    u32 head = word_of(p, length);
    u32 tail = length > 4 ? word_of(p + 4, length - 4) : 0;
    u32 hash = hash_of(p, length, head, tail);
    u32 at = hash & mask;
    while (slots[at].held != 0) at = (at + 1) & mask;
    slots[at].held = id | (length << LENGTH_SHIFT);
    slots[at].head = head;
    slots[at].tail = tail;
    slots[at].hash = hash;
  }
  return 1;
}

EXPORT("produced") u32 get_produced(void) { return produced; }

static int rest_equals(u32 id, const u8 *source, u32 length) {
  const u8 *token = token_bytes + offsets[id];
  for (u32 i = 8; i < length; i++) {
    if (token[i] != source[i]) return 0;
  }
  return 1;
}

/* The id of the token whose bytes are source[0 … length), or NO_TOKEN; `hash` is hash_of's. */
static i32 find(const u8 *source, u32 length, u32 head, u32 tail, u32 hash) {
  u32 wanted = length << LENGTH_SHIFT;
  for (u32 at = hash & mask;; at = (at + 1) & mask) {
    const slot *s = &slots[at];
    if (s->held == 0) return NO_TOKEN;
    if ((s->held & ~ID_MASK) != wanted || s->head != head || s->tail != tail || s->hash != hash) continue;
    u32 id = s->held & ID_MASK;
    if (length <= 8 || rest_equals(id, source, length)) return (i32)id;
  }
}


static i32 id_of(const u8 *source, u32 length) {
  if (length > longest_token) return NO_TOKEN;
  u32 head = word_of(source, length);
  u32 tail = length > 4 ? word_of(source + 4, length - 4) : 0;
  return find(source, length, head, tail, hash_of(source, length, head, tail));
}

/* ---- the merge (mergeOnArrays) ---- */

static i32 rank_of(const u8 *bytes, u32 start, u32 end) {
  i32 id = id_of(bytes + start, end - start);
  return id == NO_TOKEN ? NO_RANK : id;
}

/* The byte-pair merge of bytes[0 … length), 2 ≤ length ≤ ARRAY_MERGE_LIMIT; ids to out[at …); the end. */
static u32 merge_on_arrays(const u8 *bytes, u32 length, u32 *out, u32 at) {
  for (u32 i = 0; i < length; i++) {
    starts[i] = (i32)i;
    ids[i] = byte_ids[bytes[i]];
    if (i + 1 < length) {
      i32 id = pair_ids[(bytes[i] << 8) | bytes[i + 1]];
      ranks[i] = id == NO_TOKEN ? NO_RANK : id;
    } else {
      ranks[i] = NO_RANK;
    }
  }
  starts[length] = (i32)length;
  u32 parts = length;
  while (parts > 1) {
    u32 best = 0;
    i32 best_rank = ranks[0];
    for (u32 i = 1; i < parts - 1; i++) {
      if (ranks[i] < best_rank) {
        best_rank = ranks[i];
        best = i;
      }
    }
    if (best_rank == NO_RANK) break;
    parts--;
    ids[best] = best_rank;
    for (u32 i = best + 1; i < parts; i++) {
      starts[i] = starts[i + 1];
      ids[i] = ids[i + 1];
      ranks[i] = ranks[i + 1];
    }
    starts[parts] = (i32)length;
    ranks[best] = best + 1 < parts ? rank_of(bytes, (u32)starts[best], (u32)starts[best + 2]) : NO_RANK;
    if (best > 0) ranks[best - 1] = rank_of(bytes, (u32)starts[best - 1], (u32)starts[best + 1]);
  }
  for (u32 i = 0; i < parts; i++) out[at++] = (u32)ids[i];
  return at;
}

/*
 * The merge of a piece that is not one token (`hash` its hash_of), from the cache when it holds the
 * piece, and kept there: direct-mapped, a hit compares every byte.
 */
static u32 merge_piece(const u8 *bytes, u32 length, u32 hash, u32 *out, u32 at) {
  u32 entry = hash & (CACHE_ENTRIES - 1);
  u8 *held = cache_bytes + entry * CACHED_PIECE_BYTES;
  u32 *held_ids = cache_ids + entry * CACHED_PIECE_TOKENS;
  if (length <= CACHED_PIECE_BYTES && cache_keys[2 * entry] == hash &&
      (cache_keys[2 * entry + 1] & 0xff) == length) {
    u32 i = 0;
    while (i < length && held[i] == bytes[i]) i++;
    if (i == length) {
      u32 count = cache_keys[2 * entry + 1] >> 8;
      for (u32 k = 0; k < count; k++) out[at + k] = held_ids[k];
      return at + count;
    }
  }
  u32 end = merge_on_arrays(bytes, length, out, at);
  u32 count = end - at;
  if (length <= CACHED_PIECE_BYTES && count <= CACHED_PIECE_TOKENS) {
    cache_keys[2 * entry] = hash;
    cache_keys[2 * entry + 1] = length | (count << 8);
    for (u32 i = 0; i < length; i++) held[i] = bytes[i];
    for (u32 k = 0; k < count; k++) held_ids[k] = out[at + k];
  }
  return end;
}

/* ---- the scanner (cl100kAsciiPieceEnd over bytes: a byte of 128 or more is a non-ASCII character) ---- */

enum { UNKNOWN = 0, LETTER = 1, DIGIT = 2, SPACE = 3, NEWLINE = 4, OTHER = 5, END = 6 };

/* Classes of bytes: ASCII as the pattern sees it, UNKNOWN above, END for SENTINEL. */
#define O OTHER
#define L LETTER
#define D DIGIT
#define S SPACE
#define N NEWLINE
#define U UNKNOWN
#define U16 U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U
static const u8 classes[256] = {
    O, O, O, O, O, O, O, O, O, S, N, S, S, N, O, O, /* 0x00 */
    O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* 0x10 */
    S, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* 0x20 */
    D, D, D, D, D, D, D, D, D, D, O, O, O, O, O, O, /* 0x30 */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* 0x40 */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* 0x50 */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* 0x60 */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* 0x70 */
    U16, U16, U16, U16, U16, U16, U16,              /* 0x80 … 0xef */
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, END, /* 0xf0 … 0xff */
};
#undef O
#undef L
#undef D
#undef S
#undef N
#undef U
#undef U16

static const u8 *text;
static i32 text_end;

/* The class at `index` ≤ text_end (the sentinel there is END). */
static i32 class_at(i32 index) { return classes[text[index]]; }

static i32 run_end(i32 index, i32 wanted) {
  while (class_at(index) == wanted) index++;
  return index;
}

static i32 lower_at(i32 index) {
  if (index >= text_end) return 0;
  u8 code = text[index];
  return code < 128 ? (code | 32) : 0;
}

static i32 contraction_end(i32 start) {
  if (start + 1 >= text_end) return 0;
  i32 next = text[start + 1];
  if (next >= 128) return NOT_ASCII;
  i32 letter = next | 32;
  if (letter == 's' || letter == 't' || letter == 'm' || letter == 'd') return start + 2;
  i32 second;
  if (letter == 'r' || letter == 'v')
    second = 'e';
  else if (letter == 'l')
    second = 'l';
  else
    return 0;
  if (start + 2 < text_end && text[start + 2] >= 128) return NOT_ASCII;
  return lower_at(start + 2) == second ? start + 3 : 0;
}

/*
 * The end of the run of ASCII letters from `index`, eight bytes at a time: with each byte | 0x20, a
 * letter is a byte in 'a' … 'z' and nothing else is; the lowest byte that the two borrow-carrying
 * tests flag is exactly the first one out of that range (a borrow only moves up).
 */
static i32 letter_run_end(i32 index) {
  typedef unsigned long long u64;
  const u64 ones = 0x0101010101010101ull;
  const u64 highs = 0x8080808080808080ull;
  for (;;) {
    u64 word;
    __builtin_memcpy(&word, text + index, 8);
    u64 x = word | (0x20 * ones);
    u64 below = (x - 'a' * ones) & ~x & highs;
    u64 above = ((x + (127 - 'z') * ones) | x) & highs;
    u64 out = below | above;
    if (out != 0) return index + (i32)(__builtin_ctzll(out) >> 3);
    index += 8;
  }
}

static i32 letters_end(i32 index) {
  i32 end = letter_run_end(index);
  return class_at(end) == UNKNOWN ? NOT_ASCII : end;
}

/* The end of the piece at start < text_end, or NOT_ASCII. */
static i32 piece_end(i32 start) {
  i32 first = class_at(start);
  if (first == LETTER) return letters_end(start + 1);
  if (first == UNKNOWN) return NOT_ASCII;
  if (first == OTHER && text[start] == '\'') {
    i32 end = contraction_end(start);
    if (end != 0) return end;
  }
  i32 second = class_at(start + 1);
  if (first != NEWLINE && first != DIGIT && second == LETTER) return letters_end(start + 2);
  if (first == DIGIT) {
    i32 at = start + 1;
    while (at < start + 3) {
      i32 next = class_at(at);
      if (next == UNKNOWN) return NOT_ASCII;
      if (next != DIGIT) break;
      at++;
    }
    return at;
  }
  if (second == UNKNOWN && first != NEWLINE) return NOT_ASCII;
  i32 punctuation_start = first == SPACE && text[start] == ' ' ? start + 1 : start;
  i32 punctuation_class = punctuation_start == start ? first : second;
  if (punctuation_class == OTHER) {
    i32 end = run_end(punctuation_start, OTHER);
    if (class_at(end) == UNKNOWN) return NOT_ASCII;
    i32 at = end;
    while (class_at(at) == NEWLINE) at++;
    return at;
  }
  i32 end = start;
  i32 after_last_newline = -1;
  for (;;) {
    i32 next = class_at(end);
    if (next == SPACE)
      end++;
    else if (next == NEWLINE)
      after_last_newline = ++end;
    else if (next == UNKNOWN)
      return NOT_ASCII;
    else
      break;
  }
  if (after_last_newline > 0) return after_last_newline;
  if (end == text_end || end - start == 1) return end;
  return end - 1;
}

/*
 * Encodes the pieces of the text at `input` (`length` bytes, SENTINEL after them) from byte `from`,
 * writing ids to `out` from index `count`, while each piece is ASCII and of at most ARRAY_MERGE_LIMIT
 * bytes. Returns the byte where it stopped (`length` at the end); `produced` then gives the new count.
 */
EXPORT("encode") u32 encode(addr input, u32 length, u32 from, addr out_at, u32 count) {
  text = (const u8 *)input;
  text_end = (i32)length;
  u32 *out = (u32 *)out_at;
  i32 position = (i32)from;
  while (position < text_end) {
    i32 end = piece_end(position);
    if (end == NOT_ASCII || end - position > ARRAY_MERGE_LIMIT) break;
    const u8 *piece = text + position;
    u32 piece_length = (u32)(end - position);
    position = end;
    if (piece_length == 1) {
      out[count++] = (u32)byte_ids[piece[0]];
      continue;
    }
    u32 head = word_of(piece, piece_length);
    u32 tail = piece_length > 4 ? word_of(piece + 4, piece_length - 4) : 0;
    u32 hash = hash_of(piece, piece_length, head, tail);
    i32 whole = piece_length <= longest_token ? find(piece, piece_length, head, tail, hash) : NO_TOKEN;
    if (whole != NO_TOKEN)
      out[count++] = (u32)whole;
    else
      count = merge_piece(piece, piece_length, hash, out, count);
  }
  produced = count;
  return (u32)position;
}
