// Prints the plain closing line "N passed, N failed, N skipped" that CI reads after vitest's own report.
import type { Reporter } from 'vitest/reporters';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<any>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      for (const t of mod.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
    }
    process.stdout.write(`\nsmesh: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
