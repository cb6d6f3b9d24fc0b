/**
 * Seeded synthetic traffic for tests, benchmarks and examples: benign profiles (a templated support
 * bot, a varied writing assistant, a batch summariser, a classroom of many small accounts) and a
 * topic-sweeping extraction campaign that can be split over several accounts. Deterministic for a
 * given seed (core's xoshiro128**). The vocabularies are small and made up for the purpose: this is
 * a model of traffic shapes, not of real users.
 */
import { createRandom, type RandomSource } from '@tracemark/core';
import type { MonitorEvent } from './monitor.ts';

const COMMON = (
  'time year people way day man thing woman life child world school state family student group country ' +
  'problem hand part place case week company system program question work government number night point ' +
  'home water room mother area money story fact month lot right study book eye job word business issue ' +
  'side kind head house service friend father power hour game line end member law car city community name ' +
  'president team minute idea kid body information back parent face others level office door health person ' +
  'art war history party result change morning reason research girl guy moment air teacher force education ' +
  'foot boy age policy process music market sense nation plan college interest death experience effect use ' +
  'class control care field development role effort rate heart drug show leader light voice wife police mind ' +
  'price report decision son view relationship town road arm difference value building action model season ' +
  'society tax director position player record paper space ground form event official matter center couple ' +
  'site project activity star table need court oil situation cost industry figure street image phone data ' +
  'picture practice piece land product doctor wall patient worker news test movie north love support ' +
  'technology step baby computer type attention film tree source organization hair window evidence ' +
  'quickly slowly really always never often carefully simply almost early later together certainly ' +
  'bright quiet heavy small large young old new good great little own other long high different local ' +
  'important public bad able social political real best free strong sure clear whole special easy ' +
  'walk talk carry bring hold turn start show hear play run move live believe happen write sit stand lose ' +
  'pay meet include continue set learn change lead understand watch follow stop create speak read spend grow'
).split(' ');

const TOPICS = (
  'photosynthesis mitosis meiosis osmosis diffusion respiration fermentation evolution inheritance ' +
  'plate-tectonics erosion volcanism glaciation weathering tides monsoons hurricanes tornadoes ' +
  'gravity magnetism electricity friction inertia momentum entropy thermodynamics optics acoustics ' +
  'radioactivity fission fusion semiconductors superconductivity lasers transistors batteries ' +
  'vaccination immunity antibiotics metabolism digestion circulation neurons hormones enzymes proteins ' +
  'compilers databases encryption hashing routing caching consensus virtualization containers kernels ' +
  'inflation recessions tariffs taxation banking insurance auctions monopolies supply-chains currencies ' +
  'democracy federalism elections treaties diplomacy sanctions constitutions courts juries parliaments ' +
  'sonnets metaphors irony satire tragedy rhetoric grammar syntax phonetics translation dialects ' +
  'calculus derivatives integrals matrices eigenvalues probability statistics topology geometry algebra ' +
  'navigation cartography astronomy telescopes satellites rockets orbits comets eclipses galaxies ' +
  'agriculture irrigation fertilizers pesticides soil composting forestry fisheries aquaculture beekeeping'
).split(' ');

const ASPECTS =
  'stages causes effects mechanisms applications limitations components examples variants risks'.split(' ');

const NAMES =
  'Alice Bruno Chen Dana Emeka Farah Gustav Hana Ivan Julia Kofi Lena Mateo Nadia Omar Priya'.split(' ');

function pick<T>(random: RandomSource, items: readonly T[]): T {
  return items[Math.floor(random.nextFloat() * items.length)]!;
}

function sentence(random: RandomSource, length: number): string {
  const words: string[] = [];
  for (let i = 0; i < length; i++) words.push(pick(random, COMMON));
  const text = words.join(' ');
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

function exponential(random: RandomSource, meanMs: number): number {
  return -Math.log(1 - random.nextFloat()) * meanMs;
}

export type TrafficProfile =
  | 'support-bot'
  | 'writing-assistant'
  | 'batch-summariser'
  | 'classroom'
  | 'extraction-campaign';

export interface SimulationOptions {
  readonly seed: number;
  /** First request time (ms); default 0. */
  readonly start?: number;
  /** Duration (ms); default 6 h. */
  readonly durationMs?: number;
  /** Account name prefix; default the profile name. */
  readonly prefix?: string;
  /** Accounts: classroom students, or the accounts a campaign is split over; default 1 (classroom 30). */
  readonly accounts?: number;
  /** Requests of a campaign (split round-robin over its accounts); default 400. */
  readonly requests?: number;
  /** Support-bot template variant (0–3); default seed mod 4. */
  readonly variant?: number;
}

const SUPPORT_TEMPLATES: readonly ((name: string, order: number, issue: string) => string)[] = [
  (name, order, issue) =>
    `Customer ${name} (order #${order}) writes: "${issue}" Draft a polite reply that resolves the issue and offers a discount code if appropriate.`,
  (name, order, issue) =>
    `Ticket ${order} from ${name}. Message: "${issue}" Classify the ticket as billing, shipping or product, and suggest the next action for the agent.`,
  (name, order, issue) =>
    `You are the help desk assistant of Acme Bank. Client ${name}, case ${order}: "${issue}" Reply in two short paragraphs, friendly tone, no promises about refunds.`,
  (name, order, issue) =>
    `Translate the following customer message from ${name} into French and summarise it in one line for the ticket ${order}: "${issue}"`,
];

const SUPPORT_ISSUES = [
  'My parcel has not arrived after two weeks.',
  'I was charged twice for the same order.',
  'The screen of my new phone is cracked.',
  'How do I reset my password?',
  'The app crashes every time I open the settings.',
  'I want to cancel my subscription.',
  'The size I received is wrong.',
  'Can I change the delivery address?',
  'My discount code does not work at checkout.',
  'The invoice shows the wrong company name.',
  'The product stopped working after three days.',
  'I never received the confirmation email.',
];

const WRITING_TASKS = [
  (text: string) => `Rewrite this paragraph so that it reads more clearly: ${text}`,
  (text: string) => `Fix the grammar in: ${text}`,
  (text: string) => `Make this shorter and more formal. ${text}`,
  (text: string) => `Write a friendly email to my landlord about the following. ${text}`,
  (text: string) => `Can you suggest a better title for a blog post that starts like this? ${text}`,
  (text: string) => `${text} Continue the story in the same style.`,
];

const STUDENT_PHRASES = [
  (topic: string) => `what is ${topic} and why does it matter`,
  (topic: string) => `can you help me understand ${topic} for my homework`,
  (topic: string) => `I don't get ${topic}, my teacher said it was easy`,
  (topic: string) => `explain ${topic} step by step please`,
  (topic: string) => `how would you describe ${topic} to a ten year old?`,
  (topic: string) => `give me three facts about ${topic}`,
  (topic: string) => `is it true that ${topic} only happens in summer`,
  (topic: string) => `whats the difference between ${topic} and respiration`,
  (topic: string) => `write a short poem about ${topic} lol`,
  (topic: string) => `my essay is about ${topic}, how should I start it`,
];

function pushEvent(
  events: MonitorEvent[],
  event: Omit<MonitorEvent, 'ip' | 'userAgent' | 'keyCreatedAt'> & {
    ip: string;
    userAgent: string;
    keyCreatedAt: number;
  },
): void {
  events.push(event);
}

/** Synthetic requests of one profile, in time order. */
export function simulateTraffic(profile: TrafficProfile, options: SimulationOptions): MonitorEvent[] {
  const random = createRandom(options.seed);
  const start = options.start ?? 0;
  const duration = options.durationMs ?? 6 * 3_600_000;
  const prefix = options.prefix ?? profile;
  const events: MonitorEvent[] = [];
  const end = start + duration;
  const octet = (): number => 1 + Math.floor(random.nextFloat() * 250);
  switch (profile) {
    case 'support-bot': {
      const template = SUPPORT_TEMPLATES[(options.variant ?? options.seed) % SUPPORT_TEMPLATES.length]!;
      const ip = `203.0.${113 + (options.seed % 7)}.${octet()}`;
      const keyCreatedAt = start - 30 * 86_400_000;
      for (
        let at = start + random.nextFloat() * 60_000;
        at < end;
        at += 60_000 + exponential(random, 60_000)
      ) {
        const prompt = template(
          pick(random, NAMES),
          10_000 + Math.floor(random.nextFloat() * 90_000),
          pick(random, SUPPORT_ISSUES),
        );
        pushEvent(events, {
          account: prefix,
          at: Math.floor(at),
          prompt,
          promptTokens: 40 + Math.floor(random.nextFloat() * 20),
          completionTokens: 80 + Math.floor(random.nextFloat() * 80),
          ip,
          userAgent: 'support-desk/3.1 (+https://example.com/bot)',
          keyCreatedAt,
        });
      }
      break;
    }
    case 'writing-assistant': {
      const ip = `192.0.2.${octet()}`;
      const keyCreatedAt = start - 90 * 86_400_000;
      for (let at = start + exponential(random, 300_000); at < end; at += exponential(random, 360_000)) {
        const text = Array.from({ length: 1 + Math.floor(random.nextFloat() * 3) }, () =>
          sentence(random, 8 + Math.floor(random.nextFloat() * 14)),
        ).join(' ');
        pushEvent(events, {
          account: prefix,
          at: Math.floor(at),
          prompt: pick(random, WRITING_TASKS)(text),
          promptTokens: 20 + Math.floor(text.length / 5),
          completionTokens: 30 + Math.floor(random.nextFloat() * 200),
          ip,
          userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15',
          keyCreatedAt,
        });
      }
      break;
    }
    case 'batch-summariser': {
      const ip = `198.18.${options.seed % 200}.${octet()}`;
      const keyCreatedAt = start - 10 * 86_400_000;
      let at = start;
      while (at < end) {
        const batch = 20 + Math.floor(random.nextFloat() * 20);
        for (let i = 0; i < batch && at < end; i++) {
          const article = Array.from({ length: 6 + Math.floor(random.nextFloat() * 6) }, () =>
            sentence(random, 10 + Math.floor(random.nextFloat() * 10)),
          ).join(' ');
          pushEvent(events, {
            account: prefix,
            at: Math.floor(at),
            prompt: `Summarize the following article in three sentences.\n\n${article}`,
            promptTokens: Math.floor(article.length / 4.5),
            completionTokens: 60 + Math.floor(random.nextFloat() * 30),
            ip,
            userAgent: 'python-requests/2.32.3',
            keyCreatedAt,
          });
          at += 4_000 + random.nextFloat() * 3_000;
        }
        at += 1_800_000 + exponential(random, 1_800_000);
      }
      break;
    }
    case 'classroom': {
      const students = options.accounts ?? 30;
      const subnet = `198.51.${100 + (options.seed % 10)}`;
      const keyCreatedAt = start - 7 * 86_400_000;
      const homework = TOPICS.slice(0, 8);
      for (let s = 0; s < students; s++) {
        const account = `${prefix}-${String(s).padStart(3, '0')}`;
        const count = 4 + Math.floor(random.nextFloat() * 12);
        const ip = `${subnet}.${10 + s}`;
        // Each student keeps a habit or two of phrasing and extra words, as people do.
        const habits = [pick(random, STUDENT_PHRASES), pick(random, STUDENT_PHRASES)];
        for (let i = 0; i < count; i++) {
          const topic = pick(random, homework);
          const extra =
            random.nextFloat() < 0.6 ? ` ${sentence(random, 3 + Math.floor(random.nextFloat() * 8))}` : '';
          pushEvent(events, {
            account,
            at: Math.floor(start + random.nextFloat() * Math.min(duration, 3_000_000)),
            prompt: `${pick(random, random.nextFloat() < 0.5 ? habits : STUDENT_PHRASES)(topic)}${extra}`,
            promptTokens: 10 + Math.floor(random.nextFloat() * 20),
            completionTokens: 100 + Math.floor(random.nextFloat() * 300),
            ip,
            userAgent:
              'Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 Chrome/124.0 Safari/537.36',
            keyCreatedAt: keyCreatedAt + Math.floor(random.nextFloat() * 600_000),
          });
        }
      }
      events.sort((a, b) => a.at - b.at || (a.account < b.account ? -1 : 1));
      break;
    }
    case 'extraction-campaign': {
      const accounts = options.accounts ?? 1;
      const requests = options.requests ?? 400;
      const proxies = Array.from(
        { length: 3 },
        () => `100.${64 + Math.floor(random.nextFloat() * 60)}.${octet()}`,
      );
      const keyCreatedAt = start - 3_600_000;
      const names = Array.from({ length: accounts }, (_, i) =>
        accounts === 1 ? prefix : `${prefix}-${String(i).padStart(3, '0')}`,
      );
      const proxyOf = names.map(() => pick(random, proxies));
      const keyOf = names.map(() => keyCreatedAt + Math.floor(random.nextFloat() * 1_200_000));
      const gap = duration / requests;
      let topicIndex = Math.floor(random.nextFloat() * TOPICS.length);
      for (let i = 0; i < requests; i++) {
        const topic = TOPICS[topicIndex++ % TOPICS.length]!;
        const aspect = pick(random, ASPECTS);
        const who = i % accounts;
        pushEvent(events, {
          account: names[who]!,
          at: Math.floor(start + i * gap + random.nextFloat() * gap * 0.2),
          prompt: `You are an expert tutor. Explain step by step how ${topic.replaceAll('-', ' ')} works, show your reasoning, and list all the key ${aspect} of ${topic.replaceAll('-', ' ')} with examples.`,
          promptTokens: 35 + Math.floor(random.nextFloat() * 6),
          completionTokens: 700 + Math.floor(random.nextFloat() * 500),
          ip: `${proxyOf[who]}.${octet()}`,
          userAgent: 'python-httpx/0.27.0',
          keyCreatedAt: keyOf[who]!,
        });
      }
      break;
    }
    default:
      throw new RangeError(`profile: unknown profile ${String(profile)}`);
  }
  return events;
}

/** Windows of `size` consecutive prompts of one simulated account (for calibrateMmd). */
export function promptWindows(events: readonly MonitorEvent[], size: number): string[][] {
  const windows: string[][] = [];
  for (let i = 0; i + size <= events.length; i += size)
    windows.push(
      events.slice(i, i + size).map((event) => {
        if (typeof event.prompt !== 'string')
          throw new TypeError('promptWindows: expected events with prompt texts');
        return event.prompt;
      }),
    );
  return windows;
}

/** Several event streams merged in time order (ties: account name, then stream order). */
export function mergeTraffic(...streams: readonly (readonly MonitorEvent[])[]): MonitorEvent[] {
  return streams
    .flat()
    .map((event, order) => ({ event, order }))
    .sort(
      (a, b) =>
        a.event.at - b.event.at ||
        (a.event.account < b.event.account ? -1 : a.event.account > b.event.account ? 1 : a.order - b.order),
    )
    .map(({ event }) => event);
}
