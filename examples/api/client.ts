/**
 * The API reference of `@tracemark/client`: everything its package exports, nothing else.
 *
 * @module @tracemark/client
 * @document ../../packages/client/README.md
 */
export * from '@tracemark/client';
