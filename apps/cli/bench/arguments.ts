/**
 * The command line of a bench: `pnpm --filter @tracemark/cli bench -- --megabytes 16` passes the `--`
 * through, so a leading `--` is dropped.
 */
export function benchArguments(): string[] {
  return process.argv.slice(2).filter((arg, index) => !(index === 0 && arg === '--'));
}
