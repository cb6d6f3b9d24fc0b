/**
 * The API reference of `@tracemark/detection`: everything its package exports, nothing else.
 *
 * @module @tracemark/detection
 * @document ../../packages/detection/README.md
 */
export * from '@tracemark/detection';
