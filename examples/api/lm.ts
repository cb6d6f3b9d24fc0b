/**
 * The API reference of `@tracemark/lm`: everything its package exports, nothing else.
 *
 * @module @tracemark/lm
 * @document ../../packages/lm/README.md
 */
export * from '@tracemark/lm';
