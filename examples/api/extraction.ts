/**
 * The API reference of `@tracemark/extraction`: everything its package exports, nothing else.
 *
 * @module @tracemark/extraction
 * @document ../../packages/extraction/README.md
 */
export * from '@tracemark/extraction';
