import { defineConfig } from 'vite';

// React without a Babel plugin: esbuild compiles JSX (no fast refresh in `vite dev`, which
// nothing here needs). The dev server proxies the API to a local `npm start`.
const api = process.env.TOUCHPOINT_API ?? 'http://127.0.0.1:8080';

export default defineConfig(({ command }) => ({
  esbuild: { jsx: 'automatic', jsxDev: command !== 'build' },
  // A build started from a process whose NODE_ENV is something else (vitest sets "test") would
  // otherwise bundle React's development build, twice the size and slower.
  define: command === 'build' ? { 'process.env.NODE_ENV': JSON.stringify('production') } : {},
  build: {
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        // React in its own long-cached chunk: a dashboard release does not re-download it.
        manualChunks: (id) => (/node_modules\/(react|react-dom|scheduler)\//.test(id) ? 'react' : undefined),
      },
    },
  },
  server: { proxy: { '/v1': api, '/admin': api, '/openapi.json': api, '/health': api } },
}));
