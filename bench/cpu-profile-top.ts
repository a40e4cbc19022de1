/**
 * The functions with the most self time in a V8 CPU profile (`.cpuprofile`, e.g. from
 * `node --cpu-prof` or bench/identity-cpu.ts's IDENTITY_CPU_PROFILE), and the files they are in.
 *
 *   node --import tsx bench/cpu-profile-top.ts <file.cpuprofile> [rows = 30]
 */
import fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, rowsArg] = process.argv.slice(2);
if (!file) throw new Error('usage: cpu-profile-top.ts <file.cpuprofile> [rows]');
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const self = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!;
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
for (const [id, us] of self) {
  const frame = byId.get(id)!.callFrame;
  const where = frame.url.replace(/^.*\/(node_modules\/)/, '$1').replace(/^.*\/server\/src\//, 'src/');
  const name = `${frame.functionName || '(anonymous)'}  ${where}:${frame.lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  const fileKey = where.startsWith('node_modules/') ? where.split('/').slice(0, 2).join('/') : where || frame.functionName;
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
}
const rows = Number(rowsArg ?? 30);
const show = (title: string, map: Map<string, number>) => {
  console.log(`-- ${title} (total ${(total / 1e6).toFixed(2)} s sampled)`);
  for (const [name, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, rows)) {
    console.log(`${(us / 1e3).toFixed(0).padStart(8)} ms ${((us / total) * 100).toFixed(1).padStart(5)} %  ${name}`);
  }
};
show('self time by function', byFunction);
show('self time by file or package', byFile);
