/**
 * The key-independent evidence tape: one pass over the corpus that stores every distinct
 * (window, token) pair once, in document order, with where it first occurred and whether it occurs
 * in a prompt. Every key, true or fake, is then scored on this tape instead of on the raw text.
 *
 * Why this is exact. The spec's dedup key is (seed, token) (spec §4.3). The window w of a position
 * is the part of its seed input before the token: the h preceding tokens for LeftHash(h), the h − 1
 * preceding tokens for SelfHash(h). Equal (window, token) pairs have equal seeds under every key, so
 * merging them first never merges two different trials. The converse differs by scheme:
 * - LeftHash: seed = SipHash(K_context, window); two different windows share a seed only by a 64-bit
 *   collision. The true key's evaluation checks its window seeds for collisions and, should one
 *   occur, falls back to deduplicating on seeds exactly. Fake keys skip the check (a 2^-64 event per
 *   pair of windows, immaterial to a calibration).
 * - SelfHash: seed = SipHash(K_context, anchor || token), where the anchor is the window token of
 *   least key-dependent rank, so different windows share a seed under one key and not under another.
 *   Each key therefore deduplicates the tape again on its own (seed, token) pairs, in tape order.
 *
 * Prompts are excluded globally: a pair that occurs in any prompt of the corpus is never scored, in
 * any document, before or after. The spec's streaming rule (§6.3) only excludes a prompt's pairs
 * from completions that come after it; excluding them everywhere scores a subset of those positions,
 * so it can only remove evidence, and it makes the result independent of the documents' order.
 */
import type { SchemeName } from '@tracemark/core';
import { filterWindowWidth, type IssuedWindowSet } from './issued.ts';
import { KernelArena } from './kernel.ts';
import { grown, PairSet, SweptPairSet, TupleTable, tupleHash, tupleIdsInOrder } from './tables.ts';

/** The seeding scheme a tape serves; keys with the same name and h share one tape. */
export interface TapeLayout {
  readonly scheme: SchemeName;
  /** h. */
  readonly contextWidth: number;
}

const RECENT_BITS = 16;
const RECENT_SLOTS = 1 << RECENT_BITS;
/** Window ids below this combine with a token into one exact double (id · 2^32 + token < 2^53). */
const RECENT_WINDOW_LIMIT = 2 ** 21;
/** Tables sized from a hint start at most this large (they still grow past it). */
const MAX_PRESIZE = 1 << 23;
/** Held in `firstToken` as token + 1, so it never is (it goes to the pair set). */
const LAST_TOKEN = 0xffffffff;
/** 32-bit words in a 4 KB page. */
const PAGE_WORDS = 1024;
/** Expected tokens from which a LeftHash tape makes its grouped arrays in a {@link KernelArena}. */
const ARENA_MIN_TOKENS = 1 << 16;
/** Completion pairs that wait for the pair set together (see {@link EvidenceTape.settlePending}). */
const PENDING_BATCH = 1 << 18;

/** What the reading pass saw, for the report. */
export interface TapeCounts {
  readonly numDocuments: number;
  /** Completion tokens read. */
  readonly numTokens: number;
  readonly numPromptTokens: number;
  /** Completion positions with a full window and no special token. */
  readonly numEligible: number;
  /** Eligible completion positions removed by the supervised filter. */
  readonly numFilteredOut: number;
  /** Distinct (window, token) pairs of the completions that the filter kept. */
  readonly numDistinct: number;
  /** Of those, pairs that also occur in a prompt, and so are never scored. */
  readonly numExcludedByPrompt: number;
}

/** The candidates grouped by window, as the LeftHash kernel reads them. */
export interface GroupedCandidates {
  /** Window tokens, windowWidth per group. */
  readonly windows: Uint32Array;
  readonly offsets: Uint32Array;
  readonly tokens: Uint32Array;
  /** order[i]: the candidate index of grouped token i. */
  readonly order: Uint32Array;
  /** groupWindow[g]: the window id of group g; null where group g is window g (every window has one). */
  readonly groupWindow: Uint32Array | null;
}

/**
 * What every key is scored on (structured-cloneable, so worker threads can take it). Candidates are
 * the distinct (window, token) pairs of completions, kept by the filter and absent from every
 * prompt, in order of first occurrence.
 */
export interface EvaluationTape {
  readonly scheme: SchemeName;
  readonly contextWidth: number;
  /** Tokens per window: h for LeftHash, h − 1 for SelfHash. */
  readonly windowWidth: number;
  /** Every distinct window (of prompts and completions), windowWidth tokens each, by window id. */
  readonly windows: Uint32Array;
  readonly candidateWindow: Uint32Array;
  readonly candidateToken: Uint32Array;
  /** Distinct (window, token) pairs of the prompts. */
  readonly promptWindow: Uint32Array;
  readonly promptToken: Uint32Array;
  /** LeftHash: the candidates grouped by window, one group per window (a seed each). */
  readonly grouped: GroupedCandidates | null;
}

/** Where each candidate first occurred (kept apart from the tape: workers do not need it). */
export interface CandidateOrigins {
  readonly document: Uint32Array;
  readonly position: Uint32Array;
}

/**
 * Memory a deferred tape's {@link EvidenceTape.finish} (and its kernel) will write, for another thread
 * to take the page faults of while this one reads the documents' last batches or numbers the windows:
 * arrays in shared memory, each with the 32-bit words it needs per corpus position (so that the thread
 * touches no more than the corpus it sent fills). Arrays of one `group` are written together, position
 * by position (touch them in step); groups come in the order they are written. Touch a page with an
 * atomic read-modify-write that changes nothing (`Atomics.add(array, i, 0)`): this thread may be
 * writing there at the same moment.
 */
export interface TapeMemory {
  readonly array: Uint32Array;
  readonly wordsPerPosition: number;
  readonly group: number;
  /** The other thread's kernel working space, where it makes the fake keys' trial values (and both count them). */
  readonly trials?: boolean;
}

/**
 * Takes the page faults of tapes' handed-off memory ({@link EvidenceTape.handOff}) on the thread that
 * calls {@link step}, a few pages at a time, in the order the tape will write it: group by group, the
 * arrays of a group in step, up to what `positions` corpus positions fill. Each page is touched by an
 * atomic add of 0, which leaves whatever the tape's thread wrote there as it was.
 */
export class TapeMemoryToucher {
  private readonly memory: TapeMemory[] = [];
  /** Per group: the corpus positions whose memory is touched. */
  private readonly reached: number[] = [];

  /** Memory handed off (in any number of calls). */
  add(memory: readonly TapeMemory[]): void {
    this.memory.push(...memory);
    for (const { group } of memory) while (this.reached.length <= group) this.reached.push(0);
  }

  /**
   * Touches about `pages` pages of what `positions` corpus positions (the tokens and prompt tokens sent
   * to the tapes so far) fill, group by group; true once all of that is touched. (A thread that reads
   * the documents can call it as they come, as far as they go, while it waits for more.)
   */
  step(pages: number, positions: number): boolean {
    let left = pages;
    for (let group = 0; group < this.reached.length; group++) {
      while (this.reached[group]! < positions) {
        if (left <= 0) return false;
        const from = this.reached[group]!;
        const to = Math.min(positions, from + PAGE_WORDS);
        for (const entry of this.memory) {
          if (entry.group !== group) continue;
          const { array, wordsPerPosition } = entry;
          const end = Math.min(array.length, Math.ceil(to * wordsPerPosition));
          for (let word = Math.floor(from * wordsPerPosition); word < end; word += PAGE_WORDS, left--)
            Atomics.add(array, word, 0);
        }
        this.reached[group] = to;
      }
    }
    return true;
  }
}

/** Builds the tape of one layout from documents given in order. */
export class EvidenceTape {
  readonly layout: TapeLayout;
  readonly windowWidth: number;
  private readonly special: ReadonlySet<number>;
  private readonly minSpecial: number;
  private readonly issued: IssuedWindowSet | null;
  /** Windows of one token or none: looked up as they come. */
  private readonly windows: TupleTable;
  /**
   * Windows of two tokens or more are numbered in {@link finish}, all at once (see
   * {@link tupleIdsInOrder}): `add` keeps the documents, one after another in `corpus`, with the
   * place and window hash of every eligible position.
   */
  private readonly deferred: boolean;
  private corpus: Uint32Array;
  private corpusLength = 0;
  /** Per document: where it starts in `corpus`, and its prompt's length. */
  private documentStart: Uint32Array = new Uint32Array(1024);
  private documentPrompt: Uint32Array = new Uint32Array(1024);
  /** Per eligible position (prompts and completions), in corpus order: its place in `corpus`. */
  private eligibleAt: Uint32Array;
  private eligibleHash: Int32Array;
  private eligibleLength = 0;
  /** The windows {@link finish} numbered, windowWidth tokens each, by id. */
  private keptWindows: Uint32Array = new Uint32Array(0);
  /** Per window: 0 not yet asked, 1 kept by the filter, 2 removed. */
  private windowKept: Uint8Array = new Uint8Array(1024);
  /**
   * Completion pairs seen (kept by the filter): the first token seen after each window, as token + 1
   * by window id (0: none yet), and every other pair in a set. With a wide window most windows are
   * followed by one token only, and then the pair costs no hash table at all.
   */
  private firstToken: Uint32Array;
  private readonly completionPairs: SweptPairSet;
  /**
   * Pairs that follow a window other than its first token, not yet looked up in `completionPairs`:
   * each is on the order already, at `pendingAt`, until {@link settlePending} keeps it or drops it.
   */
  // They grow to PENDING_BATCH as needed: a small tape (one request's text) allocates little.
  private pendingWindow = new Uint32Array(1024);
  private pendingToken = new Uint32Array(1024);
  private pendingAt = new Uint32Array(1024);
  private pendingFirst = new Uint8Array(1024);
  private pendingLength = 0;
  private readonly promptPairs = new PairSet(1024);
  /**
   * Pairs known to be on the tape from a completion already, direct-mapped and small enough to stay
   * in cache: most positions repeat a frequent pair, and then there is nothing to record.
   */
  private readonly recent = new Float64Array(RECENT_SLOTS).fill(-1);
  /** Completion pairs in order of first occurrence, with where it was. */
  private orderWindow: Uint32Array;
  private orderToken: Uint32Array;
  private orderDocument: Uint32Array;
  private orderPosition: Uint32Array;
  private orderLength = 0;
  /** Distinct prompt pairs. */
  private promptWindow: Uint32Array = new Uint32Array(1024);
  private promptToken: Uint32Array = new Uint32Array(1024);
  private promptLength = 0;
  private sequence: Uint32Array = new Uint32Array(4096);
  private documents = 0;
  private tokens = 0;
  private promptTokens = 0;
  private eligible = 0;
  private filteredOut = 0;
  /** finish() hands out views of the tables: no document may come after it. */
  private finished = false;
  private readonly sharedMemory: boolean;
  /** The entries {@link touchAhead} has reached (a multiple of PAGE_WORDS). */
  private touched = 0;
  /**
   * Deferred tapes: the arrays {@link finish} fills, sized for the expected tokens up front so that
   * {@link touchAhead} can reach them early (used when the corpus fits, else allocated at the end).
   */
  private readonly ahead: GroupScratch | null;
  /** The arena the grouped arrays are in, if any (its kernel's working space is handed off too). */
  private readonly arena: KernelArena | null;
  /** The documents and their eligible positions lie in the arena's working space (see the constructor). */
  private readonly inWorkingSpace: boolean;
  /** {@link handOff}: another thread touches the memory {@link finish} writes; this one only its scratch. */
  private handedOff = false;

  /**
   * `expectedTokens` (optional) is a guess at the corpus's completion tokens: the tables are sized
   * for it up front instead of doubling their way there. With `sharedMemory`, the arrays a key's
   * trial values are computed from (the windows, the candidates' windows and tokens, and LeftHash's
   * grouped offsets and tokens) are in SharedArrayBuffers, so that another thread can be given them
   * without a copy (the prompts' pairs, few, are copied; so is an array that outgrew its first size).
   */
  constructor(
    layout: TapeLayout,
    specialTokenIds: ReadonlySet<number>,
    issued: IssuedWindowSet | null,
    expectedTokens = 0,
    sharedMemory = false,
  ) {
    this.sharedMemory = sharedMemory;
    this.layout = layout;
    this.windowWidth = filterWindowWidth({ name: layout.scheme, contextWidth: layout.contextWidth });
    this.special = specialTokenIds;
    let minSpecial = Number.POSITIVE_INFINITY;
    for (const id of specialTokenIds) minSpecial = Math.min(minSpecial, id);
    this.minSpecial = minSpecial;
    this.issued = issued;
    if (issued !== null && !issued.widths.includes(this.windowWidth)) {
      throw new RangeError(
        `issuedWindows: no windows of width ${this.windowWidth} (needed by ${layout.scheme}(${layout.contextWidth})); build the set with this scheme`,
      );
    }
    const capacity = Math.max(4096, Math.min(MAX_PRESIZE, Math.ceil(expectedTokens)));
    // Width 1 finds most windows in its direct table.
    this.deferred = this.windowWidth > 1;
    this.windows = new TupleTable(this.windowWidth, 4096);
    // LeftHash's grouped windows, offsets and tokens in an arena, for the kernel to score where they are
    // (from a corpus size where the copy it saves counts).
    const arena =
      this.deferred && layout.scheme === 'lefthash' && capacity >= ARENA_MIN_TOKENS
        ? KernelArena.create(
            4 * capacity * (this.windowWidth + 2) + 64,
            // The kernel's working space here: a green bit, seed and trial value a candidate at most;
            // another thread's: trial values (address space: memory only where written).
            17 * capacity + 65536,
            8 * capacity + 65536,
          )
        : null;
    this.arena = arena;
    // The documents, where their eligible positions are and what their windows hash to, and each
    // window's first token are read for the last time in finish, before any kernel runs: they lie in the
    // kernels' working space, which the kernels then write their seeds and trial values over (16 bytes a
    // position first touched once instead of twice: 11 K page faults fewer on 3.2 M positions).
    const lent = arena?.lendWorkingSpace(capacity) ?? null;
    this.inWorkingSpace = lent !== null;
    this.corpus = lent?.[0] ?? new Uint32Array(this.deferred ? capacity : 0);
    this.eligibleAt = lent?.[1] ?? new Uint32Array(this.deferred ? capacity : 0);
    this.eligibleHash =
      lent === null
        ? new Int32Array(this.deferred ? capacity : 0)
        : new Int32Array(lent[2]!.buffer, lent[2]!.byteOffset, capacity);
    this.firstToken =
      lent?.[3] ?? uint32Array(this.windowWidth > 1 ? capacity : 4096, sharedMemory && this.deferred);
    // Sized for a quarter of the tokens as distinct pairs beyond each window's first (0.27 on 16 MB of
    // documentation; one rehash where there are more): a table twice that size is touched all over by
    // random inserts, and each 4 KB touched costs a page fault (a third of the tape's time on some machines).
    this.completionPairs = new SweptPairSet(this.windowWidth > 1 ? 4096 : Math.max(4096, capacity >>> 2));
    this.orderWindow = uint32Array(capacity, sharedMemory);
    this.orderToken = uint32Array(capacity, sharedMemory);
    this.orderDocument = uint32Array(capacity, sharedMemory && this.deferred);
    this.orderPosition = uint32Array(capacity, sharedMemory && this.deferred);
    const kernelArray = (length: number): Uint32Array =>
      arena?.uint32Array(length) ?? uint32Array(length, sharedMemory);
    // Only LeftHash groups its candidates; numbering the windows borrows its order and tokens arrays
    // (SelfHash's tape, which keeps only the windows, has order and spare for it).
    const grouping = layout.scheme === 'lefthash';
    this.ahead = this.deferred
      ? {
          windows: kernelArray(capacity * this.windowWidth),
          counts: kernelArray(grouping ? capacity + 1 : 0),
          tokens: kernelArray(grouping ? capacity : 0),
          order: new Uint32Array(capacity),
          spare: new Uint32Array(grouping ? 0 : capacity),
        }
      : null;
  }

  /** Adds one document: its completion tokens and, optionally, its prompt. */
  add(tokens: ArrayLike<number>, prompt?: ArrayLike<number>): void {
    if (this.finished) throw new Error('EvidenceTape: add after finish');
    const document = this.documents++;
    const m = prompt?.length ?? 0;
    const n = tokens.length;
    this.tokens += n;
    this.promptTokens += m;
    if (this.deferred) {
      this.keep(document, tokens, prompt);
      return;
    }
    this.sequence = grown(this.sequence, m + n);
    const c = this.sequence;
    for (let i = 0; i < m; i++) c[i] = prompt![i]!;
    for (let i = 0; i < n; i++) c[m + i] = tokens[i]!;
    const w = this.windowWidth;
    const minSpecial = this.minSpecial;
    const special = this.special;
    const windows = this.windows;
    let lastSpecial = -1;
    for (let i = 0; i < m + n; i++) {
      const token = c[i]!;
      if (token >= minSpecial && special.has(token)) lastSpecial = i;
      // Eligible (spec §6): a full window, and no special token in it or at the position.
      if (lastSpecial >= i - w) continue;
      this.visit(document, c, i, m, windows.insert(c, i - w));
    }
  }

  /** {@link add} for windows of two tokens or more: the document is kept for {@link finish}. */
  private keep(document: number, tokens: ArrayLike<number>, prompt?: ArrayLike<number>): void {
    const m = prompt?.length ?? 0;
    const n = tokens.length;
    const base = this.corpusLength;
    this.corpus = grown(this.corpus, base + m + n);
    const c = this.corpus;
    for (let i = 0; i < m; i++) c[base + i] = prompt![i]!;
    for (let i = 0; i < n; i++) c[base + m + i] = tokens[i]!;
    this.corpusLength = base + m + n;
    this.documentStart = grown(this.documentStart, document + 1);
    this.documentPrompt = grown(this.documentPrompt, document + 1);
    this.documentStart[document] = base;
    this.documentPrompt[document] = m;
    this.eligibleAt = grown(this.eligibleAt, this.eligibleLength + m + n);
    this.eligibleHash = grown(this.eligibleHash, this.eligibleLength + m + n);
    const eligibleAt = this.eligibleAt;
    const eligibleHash = this.eligibleHash;
    let length = this.eligibleLength;
    const w = this.windowWidth;
    const minSpecial = this.minSpecial;
    const special = this.special;
    let lastSpecial = -1;
    for (let i = 0; i < m + n; i++) {
      const token = c[base + i]!;
      if (token >= minSpecial && special.has(token)) lastSpecial = i;
      // Eligible (spec §6): a full window, and no special token in it or at the position.
      if (lastSpecial >= i - w) continue;
      eligibleAt[length] = base + i;
      eligibleHash[length] = tupleHash(c, base + i - w, w);
      length++;
    }
    this.eligibleLength = length;
    this.touchAhead(length);
  }

  /**
   * Writes a zero on every page of the arrays {@link finish} fills, up to what `count` eligible
   * positions can use of them (the candidates and windows are at most that many). Each page costs the
   * kernel a fault when first written; taken here, the faults come while the documents are still
   * coming (on another thread, while they are read) rather than all at once at the end. The arrays are
   * zero already: nothing changes in them.
   */
  private touchAhead(count: number): void {
    const ahead = this.ahead;
    if (ahead === null) return;
    // Handed off: the numbering's scratch only (it is written first, as soon as the documents end).
    const scratch = [ahead.tokens, ahead.order, ahead.spare];
    const arrays = this.handedOff ? scratch : [...this.numberedArrays(), ahead.counts, ...scratch];
    let at = this.touched;
    for (; at < count; at += PAGE_WORDS) {
      for (const array of arrays) if (at < array.length) array[at] = 0;
    }
    const w = this.windowWidth;
    if (!this.handedOff) {
      for (let word = this.touched * w; word < at * w && word < ahead.windows.length; word += PAGE_WORDS)
        ahead.windows[word] = 0;
    }
    this.touched = at;
  }

  /** The arrays written a position at a time as the kept documents are read back (but the windows'). */
  private numberedArrays(): Uint32Array[] {
    return [this.orderWindow, this.orderToken, this.orderDocument, this.orderPosition, this.firstToken];
  }

  /**
   * Stops touching the memory {@link finish} writes (all but the numbering's scratch) as the documents
   * come, and returns it, for another thread to touch instead (see {@link TapeMemory}): call before the
   * first document. Empty for a tape that numbers its windows as they come (h = 1) or whose arrays are
   * not in shared memory; the arrays then stay this tape's to touch.
   */
  handOff(): TapeMemory[] {
    const ahead = this.ahead;
    if (ahead === null || !this.sharedMemory || this.documents > 0) return [];
    // Written as the windows are numbered (in step), then the grouping's counts, then the kernels' work.
    const numbering = [...this.numberedArrays(), ahead.windows];
    if (![...numbering, ahead.counts].every((array) => array.buffer instanceof SharedArrayBuffer)) return [];
    this.handedOff = true;
    const w = this.windowWidth;
    const memory: TapeMemory[] = numbering.map((array) => ({
      array,
      wordsPerPosition: array === ahead.windows ? w : 1,
      group: 0,
    }));
    if (ahead.counts.length > 0) memory.push({ array: ahead.counts, wordsPerPosition: 1, group: 1 });
    const work = this.arena?.workingSpace() ?? null;
    if (work !== null) {
      // The true keys' kernel: a green bit and a seed a candidate (9 bytes); the other thread's: a trial value
      // (8). Their first 8 bytes an expected position hold the documents meanwhile (touched as they come,
      // by `keep`).
      memory.push({ array: work.own, wordsPerPosition: 9 / 4, group: 2 });
      memory.push({ array: work.guest, wordsPerPosition: 2, group: 3, trials: true });
    }
    return memory;
  }

  /** Numbers the kept documents' windows, then visits their eligible positions in corpus order. */
  private readKept(): number {
    const count = this.eligibleLength;
    const w = this.windowWidth;
    const c = this.corpus;
    const eligibleAt = this.eligibleAt;
    // The hashes are no longer needed after numbering: their memory takes the ids.
    const ids = new Uint32Array(this.eligibleHash.buffer, this.eligibleHash.byteOffset, count);
    // Arrays written in full later (the grouping's order and tokens; SelfHash's spare), touched while
    // the documents came, hold the bucketed entries meanwhile.
    const ahead = this.ahead;
    // And the candidates' positions, written only after the numbering (from the first candidate on).
    const scratch =
      ahead === null
        ? null
        : ([
            ahead.order,
            this.layout.scheme === 'lefthash' ? ahead.tokens : ahead.spare,
            this.orderPosition,
          ] as const);
    const numWindows = tupleIdsInOrder(c, eligibleAt, this.eligibleHash, count, w, ids, scratch);
    // A pair other than its window's first comes after a window seen before: at most this many.
    this.completionPairs.reserve(count - numWindows);
    // And they are pending first: made at their size at once (a doubling copies them all).
    if (count - numWindows > this.pendingAt.length) this.growPending(count - numWindows);
    const windows =
      ahead !== null && numWindows * w <= ahead.windows.length && numWindows > 0
        ? ahead.windows.subarray(0, numWindows * w)
        : uint32Array(Math.max(1, numWindows * w), this.sharedMemory);
    // A new window makes a new pair: there is nothing to look up (the recent pairs are an
    // optimization of lookups only, so they need not hear of it).
    this.firstToken = grown(this.firstToken, numWindows);
    const firstToken = this.firstToken;
    this.growOrder(count);
    const orderWindow = this.orderWindow;
    const orderToken = this.orderToken;
    const orderDocument = this.orderDocument;
    const orderPosition = this.orderPosition;
    const issued = this.issued;
    let numbered = 0;
    let orderLength = this.orderLength;
    let eligible = this.eligible;
    let filteredOut = this.filteredOut;
    let k = 0;
    for (let document = 0; document < this.documents; document++) {
      const completionStart = this.documentStart[document]! + this.documentPrompt[document]!;
      const documentEnd =
        document + 1 < this.documents ? this.documentStart[document + 1]! : this.corpusLength;
      for (; k < count && eligibleAt[k]! < documentEnd; k++) {
        const i = eligibleAt[k]!;
        const window = ids[k]!;
        const isNewWindow = window === numbered;
        if (isNewWindow) {
          for (let j = 0; j < w; j++) windows[numbered * w + j] = c[i - w + j]!;
          numbered++;
        }
        const token = c[i]!;
        if (!isNewWindow || i < completionStart || token === LAST_TOKEN) {
          this.orderLength = orderLength;
          this.eligible = eligible;
          this.filteredOut = filteredOut;
          this.visit(document, c, i, completionStart, window);
          orderLength = this.orderLength;
          eligible = this.eligible;
          filteredOut = this.filteredOut;
          continue;
        }
        eligible++;
        if (issued !== null && !this.kept(window, c, i)) {
          filteredOut++;
          continue;
        }
        firstToken[window] = token + 1;
        orderWindow[orderLength] = window;
        orderToken[orderLength] = token;
        orderDocument[orderLength] = document;
        orderPosition[orderLength] = i - completionStart;
        orderLength++;
      }
    }
    this.orderLength = orderLength;
    this.eligible = eligible;
    this.filteredOut = filteredOut;
    this.keptWindows = windows.subarray(0, numWindows * w);
    return numWindows;
  }

  /**
   * Records eligible position i of `c` (a prompt position when i < m, m being where the completion
   * starts), whose window has id `window`.
   */
  private visit(document: number, c: Uint32Array, i: number, m: number, window: number): void {
    const token = c[i]!;
    if (i < m) {
      if (this.promptPairs.add(window, token)) {
        const at = this.promptLength++;
        if (at === this.promptWindow.length) {
          this.promptWindow = grown(this.promptWindow, at + 1);
          this.promptToken = grown(this.promptToken, at + 1);
        }
        this.promptWindow[at] = window;
        this.promptToken[at] = token;
      }
      return;
    }
    this.eligible++;
    const recent = this.recent;
    const recentKey = window < RECENT_WINDOW_LIMIT ? window * 4294967296 + token : Number.NaN;
    const recentSlot = (Math.imul(window, 0x9e3779b1) ^ Math.imul(token, 0x85ebca6b)) >>> (32 - RECENT_BITS);
    if (recent[recentSlot] === recentKey) return;
    if (this.issued !== null && !this.kept(window, c, i)) {
      this.filteredOut++;
      return;
    }
    recent[recentSlot] = recentKey;
    if (window >= this.firstToken.length) this.firstToken = grown(this.firstToken, window + 1);
    const first = this.firstToken[window]!;
    if (first === token + 1) return;
    if (first === 0 && token !== LAST_TOKEN) this.firstToken[window] = token + 1;
    else {
      // Another token after this window: on the order for now, and whether the pair is new is settled
      // a batch at a time, where a lookup each would miss in cache.
      if (this.pendingLength === PENDING_BATCH) this.settlePending();
      else if (this.pendingLength === this.pendingAt.length) this.growPending();
      const p = this.pendingLength++;
      this.pendingWindow[p] = window;
      this.pendingToken[p] = token;
      this.pendingAt[p] = this.orderLength;
    }
    const at = this.orderLength++;
    if (at === this.orderWindow.length) this.growOrder(at + 1);
    this.orderWindow[at] = window;
    this.orderToken[at] = token;
    this.orderDocument[at] = document;
    this.orderPosition[at] = i - m;
  }

  /** Doubles the pending arrays (up to PENDING_BATCH), or makes them `needed` long at once. */
  private growPending(needed = 0): void {
    const length = Math.min(PENDING_BATCH, Math.max(needed, 2 * this.pendingAt.length));
    this.pendingWindow = grown(this.pendingWindow, length);
    this.pendingToken = grown(this.pendingToken, length);
    this.pendingAt = grown(this.pendingAt, length);
    this.pendingFirst = grown(this.pendingFirst, length);
  }

  /**
   * Looks the pending pairs up in `completionPairs` all at once ({@link SweptPairSet.addBatch}), and
   * takes those seen before off the order: the order from the first pending pair on is compacted in
   * place (everything before it is settled), so a repeat stays there one batch at most.
   */
  private settlePending(): void {
    const count = this.pendingLength;
    if (count === 0) return;
    this.pendingLength = 0;
    const first = this.pendingFirst;
    this.completionPairs.addBatch(this.pendingWindow, this.pendingToken, count, first);
    this.orderLength = compactOrder(
      [this.orderWindow, this.orderToken, this.orderDocument, this.orderPosition],
      this.orderLength,
      this.pendingAt,
      first,
      count,
    );
  }

  /** Makes room for `needed` completion pairs. */
  private growOrder(needed: number): void {
    this.orderWindow = grown(this.orderWindow, needed);
    this.orderToken = grown(this.orderToken, needed);
    this.orderDocument = grown(this.orderDocument, needed);
    this.orderPosition = grown(this.orderPosition, needed);
  }

  /**
   * The supervised filter: keep the position when its window occurs in an issued output, and its
   * token is not one of the window's own tokens. The second rule reads only the suspect text; it
   * removes the one way an issued window's presence can depend on the very trial being scored (the
   * issued text generated a window token t after that same window, e.g. a repeated token).
   */
  private kept(window: number, c: Uint32Array, i: number): boolean {
    this.windowKept = grown(this.windowKept, window + 1);
    let state = this.windowKept[window]!;
    if (state === 0) {
      state = this.issued!.hasWindow(this.windowWidth, c, i - this.windowWidth) ? 1 : 2;
      this.windowKept[window] = state;
    }
    if (state === 2) return false;
    const token = c[i]!;
    for (let j = i - this.windowWidth; j < i; j++) if (c[j] === token) return false;
    return true;
  }

  /** The tape every key is scored on, where each candidate came from, and the counts. */
  finish(): { tape: EvaluationTape; origins: CandidateOrigins; counts: TapeCounts } {
    if (this.finished) throw new Error('EvidenceTape: finished already');
    this.finished = true;
    const numWindows = this.deferred ? this.readKept() : this.windows.size;
    this.settlePending();
    // Candidates: completion pairs that occur in no prompt of the corpus (in place: the order
    // arrays are this tape's own, and it is finished).
    let candidates = 0;
    for (let k = 0; k < this.orderLength; k++) {
      if (this.promptLength > 0 && this.promptPairs.has(this.orderWindow[k]!, this.orderToken[k]!)) continue;
      this.orderWindow[candidates] = this.orderWindow[k]!;
      this.orderToken[candidates] = this.orderToken[k]!;
      this.orderDocument[candidates] = this.orderDocument[k]!;
      this.orderPosition[candidates] = this.orderPosition[k]!;
      candidates++;
    }
    const candidateWindow = this.orderWindow.subarray(0, candidates);
    const candidateToken = this.orderToken.subarray(0, candidates);
    const document = this.orderDocument.subarray(0, candidates);
    const position = this.orderPosition.subarray(0, candidates);
    const promptWindow = this.promptWindow.slice(0, this.promptLength);
    const promptToken = this.promptToken.slice(0, this.promptLength);
    const windows = this.deferred ? this.keptWindows : this.windows.tuples();
    const tape: EvaluationTape = {
      scheme: this.layout.scheme,
      contextWidth: this.layout.contextWidth,
      windowWidth: this.windowWidth,
      windows,
      candidateWindow,
      candidateToken,
      promptWindow,
      promptToken,
      grouped:
        this.layout.scheme === 'lefthash'
          ? groupByWindow(
              windows,
              this.windowWidth,
              numWindows,
              candidateWindow,
              candidateToken,
              true,
              this.sharedMemory,
              this.ahead,
            )
          : null,
    };
    // What no longer holds anything read, its pages touched: scratch for the SelfHash keys' evaluations
    // here (the only ones that use it; kept as long as the tape lives).
    if (this.deferred && !this.inWorkingSpace && this.layout.scheme === 'selfhash') {
      const spare = [
        this.corpus,
        this.eligibleAt,
        new Uint32Array(this.eligibleHash.buffer, this.eligibleHash.byteOffset, this.eligibleHash.length),
      ];
      if (this.ahead !== null) spare.push(this.ahead.order, this.ahead.spare);
      lendScratch(tape, spare);
    }
    return {
      tape,
      origins: { document, position },
      counts: {
        numDocuments: this.documents,
        numTokens: this.tokens,
        numPromptTokens: this.promptTokens,
        numEligible: this.eligible,
        numFilteredOut: this.filteredOut,
        numDistinct: this.orderLength,
        numExcludedByPrompt: this.orderLength - candidates,
      },
    };
  }
}

/** Per finished tape: memory its evaluations may use as scratch (see {@link lendScratch}). */
const scratchOfTape = new WeakMap<EvaluationTape, readonly Uint32Array[]>();

/**
 * Lends `tape`'s evaluations on this thread `arrays` as scratch: memory whose content nobody reads any
 * more, its pages touched already (each page first touched costs a fault, and memory freed then
 * allocated again is new to the process each time). They stay with the tape for as long as it lives;
 * a later loan replaces an earlier one. The arrays must be the evaluations' alone, each in memory of its
 * own: an evaluation overwrites them while it reads the tape (an array of the tape, or two views that
 * overlap, would corrupt its result).
 */
export function lendScratch(tape: EvaluationTape, arrays: readonly Uint32Array[]): void {
  scratchOfTape.set(tape, arrays);
}

/** The scratch lent to `tape`'s evaluations (see {@link lendScratch}): none when nothing was lent. */
export function scratchOf(tape: EvaluationTape): readonly Uint32Array[] {
  return scratchOfTape.get(tape) ?? [];
}

/**
 * Arrays for {@link groupByWindow} made ahead of time (LeftHash; at least as long as it needs: counts
 * numWindows + 1, tokens and order a candidate each; counts zero, tokens and order written in full
 * there, so numbering the windows borrows them first), the windows' table of
 * {@link EvidenceTape.finish}, and for SelfHash, which does not group, a spare array for the numbering.
 */
interface GroupScratch {
  readonly windows: Uint32Array;
  readonly counts: Uint32Array;
  readonly tokens: Uint32Array;
  readonly order: Uint32Array;
  readonly spare: Uint32Array;
}

/** A Uint32Array, in a SharedArrayBuffer when `shared`. */
function uint32Array(length: number, shared: boolean): Uint32Array {
  return shared ? new Uint32Array(new SharedArrayBuffer(4 * length)) : new Uint32Array(length);
}

/**
 * Groups candidates by window (counting sort, stable): the groups are windows in id order, with
 * empty groups kept only when `includeEmpty` (so that every window gets a seed).
 */
export function groupByWindow(
  windows: Uint32Array,
  windowWidth: number,
  numWindows: number,
  candidateWindow: Uint32Array,
  candidateToken: Uint32Array,
  includeEmpty: boolean,
  sharedMemory = false,
  scratch: GroupScratch | null = null,
): GroupedCandidates {
  const n = candidateWindow.length;
  // The scratch arrays when they are large enough (and zero, as they come from the tape).
  const fits = scratch !== null && numWindows + 1 <= scratch.counts.length && n <= scratch.tokens.length;
  const counts = fits
    ? scratch.counts.subarray(0, numWindows + 1)
    : uint32Array(numWindows + 1, sharedMemory);
  for (let i = 0; i < n; i++) counts[candidateWindow[i]! + 1]!++;
  if (includeEmpty) {
    const tokens = fits ? scratch.tokens.subarray(0, n) : uint32Array(n, sharedMemory);
    return groupEveryWindow(
      windows,
      windowWidth,
      numWindows,
      candidateWindow,
      candidateToken,
      counts,
      tokens,
      fits ? scratch : null,
    );
  }
  const groupOf = new Int32Array(numWindows).fill(-1);
  let groups = 0;
  for (let window = 0; window < numWindows; window++) {
    if (includeEmpty || counts[window + 1]! > 0) groupOf[window] = groups++;
  }
  const groupWindow = new Uint32Array(groups);
  const offsets = new Uint32Array(groups + 1);
  const grouped = new Uint32Array(groups * windowWidth);
  for (let window = 0; window < numWindows; window++) {
    const group = groupOf[window]!;
    if (group < 0) continue;
    groupWindow[group] = window;
    offsets[group + 1] = counts[window + 1]!;
    for (let j = 0; j < windowWidth; j++)
      grouped[group * windowWidth + j] = windows[window * windowWidth + j]!;
  }
  for (let g = 0; g < groups; g++) offsets[g + 1] = offsets[g + 1]! + offsets[g]!;
  const next = offsets.slice(0, groups);
  const tokens = new Uint32Array(candidateWindow.length);
  const order = new Uint32Array(candidateWindow.length);
  for (let i = 0; i < candidateWindow.length; i++) {
    const group = groupOf[candidateWindow[i]!]!;
    const at = next[group]!++;
    tokens[at] = candidateToken[i]!;
    order[at] = i;
  }
  return { windows: grouped, offsets, tokens, order, groupWindow };
}

/** {@link groupByWindow} with one group per window: group g is window g, so the windows are shared. */
function groupEveryWindow(
  windows: Uint32Array,
  windowWidth: number,
  numWindows: number,
  candidateWindow: Uint32Array,
  candidateToken: Uint32Array,
  counts: Uint32Array,
  tokens: Uint32Array,
  scratch: GroupScratch | null,
): GroupedCandidates {
  const n = candidateWindow.length;
  const offsets = counts;
  for (let window = 0; window < numWindows; window++)
    offsets[window + 1] = offsets[window + 1]! + offsets[window]!;
  const order = scratch === null ? new Uint32Array(n) : scratch.order.subarray(0, n);
  // Each candidate at its group's next place: offsets[w] moves from the start of group w to its end,
  // the start of group w + 1, and the offsets are shifted back after (no array of next places).
  for (let i = 0; i < n; i++) {
    const at = offsets[candidateWindow[i]!]!++;
    tokens[at] = candidateToken[i]!;
    order[at] = i;
  }
  for (let window = numWindows; window > 0; window--) offsets[window] = offsets[window - 1]!;
  offsets[0] = 0;
  return {
    windows: windows.subarray(0, numWindows * windowWidth),
    offsets,
    tokens,
    order,
    groupWindow: null,
  };
}

/**
 * Removes, from `length` entries of the parallel `arrays`, the pending entries (at the increasing
 * indices `pendingAt[0 … count)`) whose `first` is 0, keeping the order; returns the new length.
 * Entries before the first pending one stay where they are. (A function of its own: V8 compiles its
 * loop on the stack, and code after such a loop that has never run deoptimizes it at every call.)
 */
function compactOrder(
  arrays: readonly [Uint32Array, Uint32Array, Uint32Array, Uint32Array],
  length: number,
  pendingAt: Uint32Array,
  first: Uint8Array,
  count: number,
): number {
  const [window, token, document, position] = arrays;
  let write = pendingAt[0]!;
  let p = 0;
  for (let read = write; read < length; read++) {
    if (p < count && pendingAt[p] === read && first[p++] === 0) continue;
    window[write] = window[read]!;
    token[write] = token[read]!;
    document[write] = document[read]!;
    position[write] = position[read]!;
    write++;
  }
  return write;
}
