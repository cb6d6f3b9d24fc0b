/**
 * The API reference of `@tracemark/core`: everything its package exports, nothing else.
 *
 * @module @tracemark/core
 * @document ../../packages/core/README.md
 */
export * from '@tracemark/core';
