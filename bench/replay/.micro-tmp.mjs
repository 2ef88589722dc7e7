import { ReplayEngine } from '../../services/cli/dist/audit/replay-engine.js';
import { ledger } from './ledger.mjs';
// Partition by key hash into 4 partitions, in order.
const parts = [[], [], [], []];
for (const wave of ledger({ events: 600000, seed: 42, baseMs: Date.now() - 6 * 3_600_000 })) for (const m of wave) {
  let h = 0; for (let i = 0; i < m.key.length; i++) h = (h * 31 + m.key.charCodeAt(i)) >>> 0;
  const p = parts[h & 3]; p.push({ offset: p.length, timestampMs: Number(m.timestamp), value: m.value });
}
for (let round = 0; round < 4; round++) {
  const engine = new ReplayEngine({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER });
  const c0 = process.cpuUsage(); const t0 = performance.now();
  parts.forEach((recs, p) => { const r = engine.partition(p); for (let i = 0; i < recs.length; i += 2000) r.applyAll(recs.slice(i, i + 2000)); });
  engine.finish();
  const c = process.cpuUsage(c0);
  console.log(`round ${round}: ${((c.user + c.system) / 600000).toFixed(2)} µs CPU/event, ${(600000 / ((performance.now() - t0) / 1000)).toFixed(0)} events/s`);
}
