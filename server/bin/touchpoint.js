#!/usr/bin/env node
// Touchpoint runs its TypeScript sources directly through tsx: there is no build step to remember.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
