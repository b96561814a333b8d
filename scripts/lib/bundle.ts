// Builds dist/: the daemon's main thread (src/main.ts) and its worker entry
// (workers/tasks.ts) bundled by esbuild, with the chunks both share. A start then
// loads a few files instead of some 450 modules (our sources, yaml, protobufjs,
// prom-client), which was the largest part of a restart's CPU on two cores.
// bin/warden-server runs the bundle only while it is newer than every source
// (and the lock file): an edited tree runs from source until built again.
//
//   node scripts/lib/bundle.ts ROOT
//
// The bundle lives inside the tree it was built from, one level down: files our
// modules read beside themselves (job-supervisor.sh, warden.json, seccomp.json,
// package.json, the spawner) are still read from src/, so import.meta in our
// sources is rewritten to the source file's place relative to the bundle.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import * as esbuild from 'esbuild';

const root = process.argv[2];
if (!root) {
  process.stderr.write('usage: node scripts/lib/bundle.ts ROOT\n');
  process.exit(2);
}
const dist = join(root, 'dist');
const staging = `${dist}.new-${process.pid}`;

/** Our TypeScript sources: import.meta.url and import.meta.dirname as if the file ran from src/. */
const keepSourcePlaces: esbuild.Plugin = {
  name: 'keep-source-places',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      const rel = relative(root, args.path);
      if (rel.startsWith('..') || rel.startsWith('node_modules')) return undefined;
      const text = await readFile(args.path, 'utf8');
      // Every bundle file sits right in dist/, so '../' from it is the tree's root.
      const url = `new URL(${JSON.stringify(`../${rel}`)}, import.meta.url).href`;
      const dirname = `(import.meta.dirname + ${JSON.stringify(`/../${relative(root, join(args.path, '..'))}`)})`;
      return {
        contents: text.replaceAll('import.meta.url', url).replaceAll('import.meta.dirname', dirname),
        loader: 'ts',
      };
    });
  },
};

await rm(staging, { recursive: true, force: true });
await mkdir(staging, { recursive: true });
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { main: 'src/main.ts', worker: 'workers/tasks.ts' },
  outdir: staging,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  // Piscina starts its threads from its own worker file, and pino may start a
  // transport thread from its own: both stay in node_modules as they are.
  external: ['piscina', 'pino'],
  // The worker pool starts dist/worker.js, not the source entry (src/workers/pool.ts).
  define: { WARDEN_WORKER_ENTRY: JSON.stringify('../../dist/worker.js') },
  // CommonJS packages bundled into ES modules still call require and use __dirname.
  banner: {
    js: [
      "import { createRequire as __wardenRequire } from 'node:module';",
      'const require = __wardenRequire(import.meta.url);',
      'const __filename = import.meta.filename;',
      'const __dirname = import.meta.dirname;',
    ].join(' '),
  },
  chunkNames: 'chunk-[hash]',
  plugins: [keepSourcePlaces],
  logLevel: 'warning',
  metafile: true,
});
const inputs = Object.keys(result.metafile.inputs).length;
await writeFile(join(staging, 'BUILT'), `${inputs} modules bundled by esbuild ${esbuild.version}; rebuild: scripts/build\n`);
// Swapped in whole: a daemon starting meanwhile finds the old bundle, the new one, or none (then it runs from source).
await rm(`${dist}.old`, { recursive: true, force: true });
await rename(dist, `${dist}.old`).catch((err: NodeJS.ErrnoException) => {
  if (err.code !== 'ENOENT') throw err;
});
await rename(staging, dist);
await rm(`${dist}.old`, { recursive: true, force: true });
process.stdout.write(`build: dist/ holds the daemon bundled (${inputs} modules)\n`);
