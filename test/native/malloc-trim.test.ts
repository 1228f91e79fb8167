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
    // A small Buffer allocated after them stays alive and holds the top of the heap: glibc then cannot give the freed
    // space back by itself when free() reaches the top (it would, at random, depending on the GC's order); only the
    // trim returns it (madvise on the free pages inside the heap).
    const script = `
      const raw = require(${JSON.stringify(addonPath())});
      const { fullGcFunction, arrayBuffersFreed } = require(${JSON.stringify(RECLAIM)});
      const gc = fullGcFunction();
      raw.mallocTrim();
      let bufs = [];
      for (let i = 0; i < 3000; i++) bufs.push(Buffer.allocUnsafeSlow(60000).fill(1));
      const pin = Buffer.allocUnsafeSlow(1024).fill(2);
      const filled = process.memoryUsage.rss();
      bufs = undefined;
      gc();
      // The backing stores are freed after the GC, on another thread: wait for that as the reclaim does.
      arrayBuffersFreed().then(() => {
        const afterGc = process.memoryUsage.rss();
        const trimmed = raw.mallocTrim();
        console.log(JSON.stringify({ filled, afterGc, trimmed, afterTrim: process.memoryUsage.rss(), pinned: pin.length }));
      });
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
