/**
 * The API reference of `@tracemark/tokenizers`: everything its package exports, nothing else.
 *
 * @module @tracemark/tokenizers
 * @document ../../packages/tokenizers/README.md
 */
export * from '@tracemark/tokenizers';
