// The unit test tree mirrors the source tree: every test/unit/<path>/X.test.ts sits in a <path> that is a directory of the repository's sources (test/unit/agent/proxy/ ↔ agent/proxy/), so the tests of a module are found next to where the module lives. Prints each misplaced test, exits 1 if there is one. Run: `npx tsx scripts/check-test-tree.ts [repository root]` (test/unit/scripts/structure.test.ts runs it in `make test`).
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(process.argv[2] ?? path.join(__dirname, '..'));
const UNIT = path.join(ROOT, 'test', 'unit');
/** Top-level directories that hold no sources a unit test could mirror (build output, dependencies, the tests themselves). */
const NOT_SOURCE = new Set(['test', 'dist', 'build', 'node_modules', '.git']);

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...testFiles(p));
    else if (e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

/** Why `file` (a path under test/unit) does not mirror a source directory, or undefined when it does. */
function misplacement(file: string): string | undefined {
  const dir = path.relative(UNIT, path.dirname(file));
  if (dir === '') return 'sits at the top of test/unit; move it to test/unit/<dir of the module it tests>/';
  const top = dir.split(path.sep)[0]!;
  if (NOT_SOURCE.has(top)) return `${top}/ is not a source directory`;
  if (!fs.statSync(path.join(ROOT, dir), { throwIfNoEntry: false })?.isDirectory()) return `there is no source directory ${dir}/`;
  return undefined;
}

const files = testFiles(UNIT);
const problems: string[] = [];
for (const f of files) {
  const why = misplacement(f);
  if (why) problems.push(`${path.relative(ROOT, f)}: ${why}`);
}
for (const p of problems) console.log(p);
console.log(`${files.length} unit test file(s), ${problems.length} outside the source tree's mirror`);
process.exitCode = problems.length > 0 ? 1 : 0;
