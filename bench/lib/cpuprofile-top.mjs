#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof): top functions by self time, and self time by
// source area (node_modules package, workspace package, node internals, native/GC).
//   node bench/lib/cpuprofile-top.mjs FILE.cpuprofile [--top 30] [--inclusive REGEX …]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/**
 * Inclusive time: for each pattern, the time of samples whose stack holds a frame matching it
 * ("functionName url" is matched; each sample counts once per pattern).
 */
export function inclusiveTime(profile, patterns) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const matches = new Map();
  const hit = (id, re) => {
    const key = `${id}|${re.source}`;
    if (matches.has(key)) return matches.get(key);
    const node = byId.get(id);
    const cf = node.callFrame;
    const self = re.test(`${cf.functionName} ${cf.url}`);
    const value = self || (parent.has(id) ? hit(parent.get(id), re) : false);
    matches.set(key, value);
    return value;
  };
  const out = patterns.map((p) => ({ pattern: p, ms: 0 }));
  const res = patterns.map((p) => new RegExp(p));
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    const dt = profile.timeDeltas[i] ?? 0;
    if (byId.get(id).callFrame.functionName === '(idle)') continue;
    busy += dt;
    res.forEach((re, k) => {
      if (hit(id, re)) out[k].ms += dt;
    });
  }
  return out.map((o) => ({ ...o, ms: o.ms / 1000, share: o.ms / busy }));
}

export function summarizeProfile(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fns = new Map();
  const areas = new Map();
  for (const [id, us] of self) {
    const node = byId.get(id);
    const cf = node.callFrame;
    const url = cf.url ?? '';
    const key = `${cf.functionName || '(anonymous)'} ${shortUrl(url)}:${cf.lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const area = areaOf(cf.functionName, url);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const sorted = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, ms: us / 1000, share: us / total }));
  return { totalMs: total / 1000, functions: sorted(fns), areas: sorted(areas) };
}

function shortUrl(url) {
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) return url.slice(nm + 'node_modules/'.length);
  const ws = url.search(/\/(packages|services|bench)\//);
  if (ws !== -1) return url.slice(ws + 1);
  return url.replace(/^file:\/\//, '');
}

function areaOf(functionName, url) {
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return '(program: native, outside JS)';
  if (url === '') return `native: ${functionName || '(anonymous)'}`;
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    const pkg = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    return pkg.startsWith('@dwell/') ? pkg : `npm: ${pkg}`;
  }
  const ws = /\/(packages|services)\/([^/]+)\//.exec(url);
  if (ws) return `@dwell/${ws[2]}`;
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/')[0]}`;
  return url;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: 'string', default: '30' },
      inclusive: { type: 'string', multiple: true, default: [] },
    },
  });
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, 'utf8'));
    const s = summarizeProfile(profile);
    const busy = s.areas.filter((a) => a.name !== 'idle').reduce((x, a) => x + a.ms, 0);
    console.log(
      `\n${file}: ${s.totalMs.toFixed(0)} ms sampled, ${busy.toFixed(0)} ms not idle\n\nby area (share of non-idle time):`,
    );
    for (const a of s.areas.filter((a) => a.name !== 'idle'))
      console.log(
        `  ${((a.ms / busy) * 100).toFixed(1).padStart(5)}%  ${a.ms.toFixed(0).padStart(7)} ms  ${a.name}`,
      );
    console.log(`\ntop ${values.top} functions by self time (share of non-idle):`);
    for (const f of s.functions
      .filter((f) => f.name.split(' ')[0] !== '(idle)')
      .slice(0, Number(values.top))) {
      console.log(
        `  ${((f.ms / busy) * 100).toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}`,
      );
    }
    if (values.inclusive.length > 0) {
      console.log('\ninclusive time (share of non-idle):');
      for (const r of inclusiveTime(profile, values.inclusive))
        console.log(
          `  ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms  ${r.pattern}`,
        );
    }
  }
}
