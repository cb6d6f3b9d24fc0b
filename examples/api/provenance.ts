/**
 * The API reference of `@tracemark/provenance`: everything its package exports, nothing else.
 *
 * @module @tracemark/provenance
 * @document ../../packages/provenance/README.md
 */
export * from '@tracemark/provenance';
