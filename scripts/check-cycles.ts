// Import cycles among the TypeScript sources (files, and top-level directories: cli → agent, control → core → proto; agent and control never import each other): prints each cycle, exits 1 if there is one. Type-only imports count: they tie modules together for a reader too. Run: `npx tsx scripts/check-cycles.ts` (test/unit/scripts/structure.test.ts runs it in `make test`).
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const DIRS = ['cli', 'agent', 'control', 'core', 'proto'];
/** Allowed directory edges: each directory may import the ones listed (its own files always). The two deployables share only core/ and proto/; cli/ composes them. */
const LAYERS: Record<string, readonly string[]> = { cli: ['agent', 'control', 'core', 'proto'], control: ['core', 'proto'], agent: ['core', 'proto'], core: ['proto'], proto: [] };

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    // protoc-style generated types mirror the .proto files (google.protobuf.Struct ⇄ Value is recursive by definition).
    if (e.isDirectory()) {
      if (path.relative(ROOT, p) !== path.join('proto', 'generated')) out.push(...sources(p));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function resolve(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(c)) return c;
  return undefined;
}

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

const files = DIRS.filter((d) => fs.existsSync(path.join(ROOT, d))).flatMap((d) => sources(path.join(ROOT, d)));
const graph = new Map<string, string[]>();
for (const f of files) {
  const text = fs.readFileSync(f, 'utf8');
  const deps = new Set<string>();
  for (const m of text.matchAll(IMPORT_RE)) {
    const target = resolve(f, m[1] ?? m[2] ?? m[3]!);
    if (target) deps.add(target);
  }
  graph.set(f, [...deps]);
}

const rel = (f: string) => path.relative(ROOT, f);
const top = (f: string) => rel(f).split(path.sep)[0]!;

// Directory layering.
const layerViolations: string[] = [];
for (const [f, deps] of graph) {
  for (const d of deps) {
    const a = top(f);
    const b = top(d);
    if (a !== b && !(LAYERS[a] ?? []).includes(b)) layerViolations.push(`${rel(f)} → ${rel(d)} (${a} may not import ${b})`);
  }
}

// File cycles: strongly connected components (Tarjan).
let index = 0;
const idx = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const onStack = new Set<string>();
const cycles: string[][] = [];
function strong(v: string): void {
  idx.set(v, index);
  low.set(v, index++);
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!idx.has(w)) {
      strong(w);
      low.set(v, Math.min(low.get(v)!, low.get(w)!));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
  }
  if (low.get(v) === idx.get(v)) {
    const comp: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      comp.push(w);
    } while (w !== v);
    if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(comp.map(rel).sort());
  }
}
for (const f of graph.keys()) if (!idx.has(f)) strong(f);

for (const c of cycles) console.log(`cycle: ${c.join(' ⇄ ')}`);
for (const v of layerViolations) console.log(`layer: ${v}`);
console.log(`${files.length} files: ${cycles.length} import cycle(s), ${layerViolations.length} layering violation(s)`);
process.exit(cycles.length + layerViolations.length > 0 ? 1 : 0);
