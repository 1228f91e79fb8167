// The addon's mallocTrim() binding (glibc malloc_trim(0), used by agent/runtime/reclaim.ts): callable, returns a boolean, and gives freed malloc pages back to the OS.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addonPath, loadRawNative } from '../../agent/native/raw';

const RECLAIM = path.resolve(__dirname, '../../agent/runtime/reclaim.ts');

describe('mallocTrim', () => {
  it('is callable, returns a boolean, and can be called again at once', () => {
    const raw = loadRawNative();
    expect(typeof raw.mallocTrim).toBe('function');
    expect(typeof raw.mallocTrim()).toBe('boolean');
    expect(typeof raw.mallocTrim()).toBe('boolean');
  });

  it('returns the pages of freed Buffers that a full GC alone leaves mapped (fresh process)', () => {
    // 3,000 × 60 kB Buffers (below glibc's mmap threshold: they live in the malloc arena), written, dropped, collected.
    const script = `
      const raw = require(${JSON.stringify(addonPath())});
      const gc = require(${JSON.stringify(RECLAIM)}).fullGcFunction();
      raw.mallocTrim();
      let bufs = [];
      for (let i = 0; i < 3000; i++) bufs.push(Buffer.allocUnsafeSlow(60000).fill(1));
      const filled = process.memoryUsage.rss();
      bufs = undefined;
      gc();
      const afterGc = process.memoryUsage.rss();
      const trimmed = raw.mallocTrim();
      console.log(JSON.stringify({ filled, afterGc, trimmed, afterTrim: process.memoryUsage.rss() }));
    `;
    const out = execFileSync(process.execPath, ['-r', 'tsx/cjs', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as { filled: number; afterGc: number; trimmed: boolean; afterTrim: number };
    const MiB = 1048576;
    expect(r.filled).toBeGreaterThan(150 * MiB);
    expect(r.trimmed).toBe(true);
    // Freed but kept by glibc after the GC; given back by the trim.
    expect(r.afterGc - r.afterTrim).toBeGreaterThan(100 * MiB);
  });
});
