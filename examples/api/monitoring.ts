/**
 * The API reference of `@tracemark/monitoring`: everything its package exports, nothing else.
 *
 * @module @tracemark/monitoring
 * @document ../../packages/monitoring/README.md
 */
export * from '@tracemark/monitoring';
