/**
 * Personalisation helpers shared by the browser and WeChat builds: read the visitor's
 * client-visible segments and decisions with a time limit and a fallback, so a page never waits.
 */
export { createPersonalizer, fetchGet, withFallback, type Decision, type HttpGet, type Personalizer, type PersonalizerOptions, type Visitor } from './personalize.ts';
export { base64, writeKeyAuthorization } from './base64.ts';
