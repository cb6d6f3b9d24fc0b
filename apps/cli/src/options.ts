/** Option parsers that turn bad values into usage errors naming the option. */
import { InvalidArgumentError } from 'commander';

export function parseNumber(name: string, min: number, max: number, integer = false) {
  return (value: string): number => {
    const parsed = Number(value);
    if (
      value.trim() === '' ||
      !Number.isFinite(parsed) ||
      parsed < min ||
      parsed > max ||
      (integer && !Number.isInteger(parsed))
    ) {
      throw new InvalidArgumentError(
        `${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`,
      );
    }
    return parsed;
  };
}

export function parseOpenUnit(name: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!(parsed > 0 && parsed < 1))
      throw new InvalidArgumentError(`${name} must be a number strictly between 0 and 1`);
    return parsed;
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
