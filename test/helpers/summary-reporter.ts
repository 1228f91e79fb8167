// Prints the plain closing line "N passed, N failed, N skipped" that CI reads after vitest's own report.
import type { Reporter } from 'vitest/reporters';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<any>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      let failedHere = 0;
      for (const t of mod.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedHere++;
        else skipped++;
      }
      // A module whose setup (collection, beforeAll) failed may report its tests as skipped: count it as a failure.
      if (failedHere === 0 && mod.state() === 'failed') failedHere = 1;
      failed += failedHere;
    }
    failed += unhandledErrors.length;
    process.stdout.write(`\nsmesh: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
