/** The monitoring service's error codes (listed in ERROR_CODES, errors.ts). */
import { GatewayError } from '../errors.ts';

export const MONITORING_ERROR_CODES = [
  'TM_ERR_INPUT_POLICY',
  'TM_ERR_OUTPUT_POLICY',
  'TM_ERR_ACCOUNT_SUSPENDED',
] as const;

export type MonitoringErrorCode = (typeof MONITORING_ERROR_CODES)[number];

export function monitoringError(
  statusCode: number,
  code: MonitoringErrorCode,
  message: string,
  param: string | null = null,
): GatewayError {
  return new GatewayError(statusCode, code, message, { param });
}
