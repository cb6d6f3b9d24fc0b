import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultDataDir } from '@tracemark/gateway';
import { afterAll, describe, expect, it } from 'vitest';
import { capture } from '../capture.test-helper.ts';
import { run } from '../cli.ts';
import { gatewayDataDir } from '../gateway-data-dir.test-helper.ts';
import { withoutPassword } from '../io.ts';
import { spawnCli } from '../spawn.test-helper.ts';
import { keysCreateCommand } from './serve.ts';

const directory = mkdtempSync(join(tmpdir(), 'tracemark-keys-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

describe('keys: only in the data directory of a gateway', () => {
  it.each([
    ['create', ['keys', 'create', '--scopes', 'generate']],
    ['list', ['keys', 'list']],
    ['revoke', ['keys', 'revoke', 'ak_0000000000000000']],
  ])('%s refuses a directory where no gateway ran, and creates nothing there', async (_name, argv) => {
    const typo = join(directory, `typo-${_name}`);
    const human = capture();
    expect(await run([...argv, '--data-dir', typo], human.io)).toBe(2);
    expect(human.err()).toBe(
      `error: ${typo}: no gateway has run in this data directory (no server-secret or gateway.sqlite); start \`tracemark serve --data-dir ${typo}\` first, or pass the gateway's own --data-dir\n`,
    );
    expect(existsSync(typo)).toBe(false);

    // An empty directory that exists stays empty.
    mkdirSync(typo);
    const json = capture();
    expect(await run([...argv, '--data-dir', typo, '--json'], json.io)).toBe(2);
    expect(JSON.parse(json.out()).error.code).toBe('TM_ERR_NO_GATEWAY');
    expect(readdirSync(typo)).toEqual([]);
  });

  it("a gateway's directory works; with DATABASE_URL the SQLite file is not required", async () => {
    const dataDir = await gatewayDataDir(join(directory, 'gateway'));
    const created = capture();
    expect(
      await run(['keys', 'create', '--scopes', 'generate', '--data-dir', dataDir, '--json'], created.io),
    ).toBe(0);
    const { id } = JSON.parse(created.out());
    const listed = capture();
    expect(await run(['keys', 'list', '--data-dir', dataDir, '--json'], listed.io)).toBe(0);
    expect(JSON.parse(listed.out()).keys.map((key: { id: string }) => key.id)).toEqual([id]);

    // PostgreSQL holds the keys: the directory needs only the server secret, and the database is tried.
    const postgres = join(directory, 'postgres');
    await gatewayDataDir(postgres);
    rmSync(join(postgres, 'gateway.sqlite'));
    const unreachable = capture();
    unreachable.io.env.DATABASE_URL = 'postgres://tracemark@127.0.0.1:1/tracemark';
    expect(await run(['keys', 'list', '--data-dir', postgres, '--json'], unreachable.io)).toBe(3);
    expect(JSON.parse(unreachable.out()).error.message).toMatch(/^cannot open the gateway's storage/);
    expect(existsSync(join(postgres, 'gateway.sqlite'))).toBe(false);
    // Without the server secret it is refused all the same.
    rmSync(join(postgres, 'server-secret'));
    const noSecret = capture();
    noSecret.io.env.DATABASE_URL = 'postgres://tracemark@127.0.0.1:1/tracemark';
    expect(await run(['keys', 'list', '--data-dir', postgres], noSecret.io)).toBe(2);
    expect(noSecret.err()).toMatch(/no gateway has run in this data directory \(no server-secret\); start/);
  });

  it('a bad --expires-at is reported under that name', async () => {
    const dataDir = await gatewayDataDir(join(directory, 'expiry'));
    const yesterday = capture();
    expect(
      await run(
        ['keys', 'create', '--scopes', 'generate', '--expires-at', 'yesterday', '--data-dir', dataDir],
        yesterday.io,
      ),
    ).toBe(2);
    expect(yesterday.err()).toMatch(/--expires-at.*expected an ISO 8601 date and time/);
    expect(yesterday.err()).not.toMatch(/expiresAt/);
    const past = capture();
    expect(
      await run(
        ['keys', 'create', '--scopes', 'generate', '--expires-at', '2001-01-01', '--data-dir', dataDir],
        past.io,
      ),
    ).toBe(2);
    expect(past.err()).toBe('error: --expires-at: must be in the future\n');
    const scope = capture();
    expect(await run(['keys', 'create', '--scopes', 'generate,root', '--data-dir', dataDir], scope.io)).toBe(
      2,
    );
    expect(scope.err()).toMatch(/^error: --scopes: unknown scope "root"/);
  });
});

describe('keys revoke: a key revoked before', () => {
  it('says when it was revoked, and exits 0: revoking is idempotent', async () => {
    const dataDir = await gatewayDataDir(join(directory, 'revoke-twice'));
    const created = capture();
    expect(
      await run(['keys', 'create', '--scopes', 'generate', '--data-dir', dataDir, '--json'], created.io),
    ).toBe(0);
    const { id } = JSON.parse(created.out());
    const first = capture();
    expect(await run(['keys', 'revoke', id, '--data-dir', dataDir, '--json'], first.io)).toBe(0);
    const { revokedAt } = JSON.parse(first.out());
    expect(JSON.parse(first.out())).toEqual({ id, revokedAt: expect.any(String), alreadyRevoked: false });

    const again = capture();
    expect(await run(['keys', 'revoke', id, '--data-dir', dataDir], again.io)).toBe(0);
    expect(again.out()).toBe(`${id} was already revoked, at ${revokedAt}\n`);
    const againJson = capture();
    expect(await run(['keys', 'revoke', id, '--data-dir', dataDir, '--json'], againJson.io)).toBe(0);
    // The first revocation's time is kept.
    expect(JSON.parse(againJson.out())).toEqual({ id, revokedAt, alreadyRevoked: true });
  });
});

describe('storage errors of serve and keys', () => {
  it('keys: a DATABASE_URL that is not a URL is named as such (exit 2), before anything is opened', async () => {
    const dataDir = await gatewayDataDir(join(directory, 'bad-url'));
    for (const [url, message] of [
      ['not a url', 'DATABASE_URL is not a valid URL'],
      ['mysql://ada:hunter2@127.0.0.1/db', 'DATABASE_URL must use postgres: or postgresql:'],
      ['postgres://ada:hunter2@127.0.0.1:99999/db', 'DATABASE_URL is not a valid URL'],
    ]) {
      const result = capture();
      result.io.env.DATABASE_URL = url;
      expect(await run(['keys', 'list', '--data-dir', dataDir], result.io)).toBe(2);
      expect(result.err()).toBe(`error: ${message}\n`);
      const json = capture();
      json.io.env.DATABASE_URL = url;
      expect(await run(['keys', 'list', '--data-dir', dataDir, '--json'], json.io)).toBe(2);
      expect(JSON.parse(json.out()).error.code).toBe('TM_ERR_CONFIG');
    }
  });

  it('keys: an unreachable database is a storage error (exit 3) that never shows the password', async () => {
    const dataDir = await gatewayDataDir(join(directory, 'unreachable'));
    const result = capture();
    result.io.env.DATABASE_URL = 'postgres://ada:hunter2@127.0.0.1:1/tracemark';
    expect(await run(['keys', 'list', '--data-dir', dataDir], result.io)).toBe(3);
    expect(result.err()).toMatch(/^error: cannot open the gateway's storage: .*ECONNREFUSED/);
    expect(result.err()).not.toContain('hunter2');
  });

  it('serve: an unreachable database exits 3, as its help says, without the password', async () => {
    const dataDir = join(directory, 'serve-unreachable');
    const serve = spawnCli(['serve', '--data-dir', dataDir, '--port', '0'], {
      DATABASE_URL: 'postgres://ada:hunter2@127.0.0.1:1/tracemark',
    });
    expect(await serve.exited).toBe(3);
    expect(serve.stderr()).toMatch(
      /^error: cannot open the PostgreSQL database at DATABASE_URL \(connect ECONNREFUSED 127\.0\.0\.1:1\)$/m,
    );
    expect(serve.stderr() + serve.stdout()).not.toContain('hunter2');
    const help = capture();
    await run(['serve', '--help'], help.io);
    expect(help.out()).toMatch(/3 cannot listen .*\n?.*storage/);
  }, 60_000);

  it('the password of a URL is left out of a message, as written and decoded', () => {
    const url = 'postgres://ada:s%40cret@db.example/tracemark';
    expect(withoutPassword('failed for postgres://ada:s%40cret@db.example: s@cret', url)).toBe(
      'failed for postgres://ada:***@db.example: ***',
    );
    expect(withoutPassword('no password here', 'postgres://ada@db/t')).toBe('no password here');
    expect(withoutPassword('text', null)).toBe('text');
  });
});

describe("serve's first-start hint", () => {
  const gateway = { defaultDataDir };
  it('names the data directory unless it is the built-in default', () => {
    const env = { HOME: '/home/ada' };
    expect(keysCreateCommand(gateway, defaultDataDir(env), env)).toBe(
      'tracemark keys create --scopes generate,verify',
    );
    expect(keysCreateCommand(gateway, '/srv/tracemark', env)).toBe(
      'tracemark keys create --scopes generate,verify --data-dir /srv/tracemark',
    );
    // Set in serve's environment, TRACEMARK_DATA_DIR may not be where the command is pasted.
    expect(
      keysCreateCommand(gateway, '/srv/tracemark', { ...env, TRACEMARK_DATA_DIR: '/srv/tracemark' }),
    ).toBe('tracemark keys create --scopes generate,verify --data-dir /srv/tracemark');
    expect(keysCreateCommand(gateway, "/srv/Ada's keys", env)).toBe(
      `tracemark keys create --scopes generate,verify --data-dir '/srv/Ada'\\''s keys'`,
    );
  });
});
