/** Injection tokens for what the composition root builds outside Nest. */
export const APP_CONFIG = Symbol('APP_CONFIG');
export const DATABASE = Symbol('DATABASE');
