// The fast YAML reader behind the file source: wherever it accepts a text it yields exactly what the `yaml` library does (values, document lines, no hidden errors), checked on random and mutated texts; config files of the usual shape take the fast path.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { LineCounter, parseAllDocuments } from 'yaml';
import { parseConfigText, type ConfigProblem } from '../../../../control/config/config-dir';
import { parseSimpleYaml } from '../../../../control/config/simple-yaml';
import { BASE, GOOD } from '../../fixtures/traffic';
import { NODES_YAML, WORKLOADS_YAML } from '../../fixtures/control';
import { seeded as prng } from '../../../helpers/prng';

/** What the yaml library makes of `text`: per document its line, value, and whether it had errors. */
function reference(text: string): Array<{ line: number | undefined; value: unknown; errors: number }> {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false });
  return (Array.isArray(docs) ? docs : [docs]).map((d) => ({
    line: d.range ? lc.linePos(d.range[0]).line : undefined,
    value: d.errors.length > 0 ? undefined : d.toJS(),
    errors: d.errors.length,
  }));
}

/** The property: accepted ⇒ same documents, lines and values as `yaml`, which found no error. */
function check(text: string): boolean {
  const fast = parseSimpleYaml(text);
  if (!fast) return false;
  const ref = reference(text);
  const ctx = JSON.stringify(text).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  expect(
    ref.map((d) => d.errors),
    ctx,
  ).toEqual(ref.map(() => 0));
  expect(
    fast.map((d) => d.line),
    ctx,
  ).toEqual(ref.map((d) => d.line));
  expect(
    isDeepStrictEqual(
      fast.map((d) => d.value),
      ref.map((d) => d.value),
    ),
    ctx,
  ).toBe(true);
  // Same key order too (toStrictEqual ignores it).
  expect(JSON.stringify(fast.map((d) => d.value)), ctx).toBe(JSON.stringify(ref.map((d) => d.value)));
  return true;
}

const KEYS = ['a', 'b', 'name', 'app.kubernetes.io/name', 'x-y', 'smesh.io/netns', '80', 'true', 'null', '__proto__', '<<', 'a b', 'k:v', '_k', '-k', 'constructor', 'A1'];
const SCALARS = [
  '',
  'abc',
  '1',
  '-1',
  '+1',
  '007',
  '1.5',
  '1.',
  '.5',
  '1e3',
  '-2.5E-3',
  '0x1F',
  '0o17',
  '.inf',
  '-.Inf',
  '.nan',
  'true',
  'True',
  'TRUE',
  'tRUE',
  'yes',
  'no',
  'on',
  'null',
  'Null',
  'NULL',
  '~',
  'fd00::1',
  'fd00::',
  '198.18.0.1',
  'a:b',
  'a: b',
  'a:',
  ':a',
  '-a',
  '- a',
  '-',
  '--',
  '?a',
  '? a',
  'a#b',
  'a #b',
  '#a',
  'a,b',
  'a]',
  'a}',
  '[a',
  '{a',
  "it's",
  '"x"',
  "'y'",
  'a  b',
  ' lead',
  'trail ',
  'http://x/y?z=1&w',
  '*',
  '*a',
  '&a',
  '!t',
  '!!str x',
  '|',
  '>',
  '%x',
  '@x',
  '`x',
  'x\\y',
  '2020-01-01T00:00:00Z',
  '1_000',
  '0',
  '-0',
  '12345678901234567890',
  'ümlaut',
  '日本',
  'a\u00a0b',
  '\u00a0b',
  'b\u00a0',
  '\u2003x',
  '---',
  '...',
  'a---',
  '=',
  '<<',
];

function pick<X>(rnd: () => number, xs: readonly X[]): X {
  return xs[Math.floor(rnd() * xs.length)]!;
}

type V = string | V[] | { [k: string]: V } | null;

function value(rnd: () => number, depth: number): V {
  const r = rnd();
  if (depth > 2 || r < 0.45) return r < 0.05 ? null : pick(rnd, SCALARS);
  if (r < 0.7) return Array.from({ length: Math.floor(rnd() * 3) }, () => value(rnd, depth + 1));
  const o: { [k: string]: V } = {};
  for (let i = Math.floor(rnd() * 4); i > 0; i--) o[pick(rnd, KEYS)] = value(rnd, depth + 1);
  return o;
}

function scalarText(rnd: () => number, s: string): string {
  const r = rnd();
  if (r < 0.15) return `'${s.replace(/'/g, "''")}'`;
  if (r < 0.25) return `"${s}"`;
  return s;
}

function flow(rnd: () => number, v: V): string {
  if (v === null) return pick(rnd, ['null', '~', '']);
  if (typeof v === 'string') return scalarText(rnd, v);
  if (Array.isArray(v)) return `[${v.map((x) => flow(rnd, x)).join(pick(rnd, [', ', ',', ' , ']))}]`;
  return `{${Object.entries(v)
    .map(([k, x]) => `${scalarText(rnd, k)}:${rnd() < 0.8 ? ' ' : ''}${flow(rnd, x)}`)
    .join(', ')}}`;
}

function comment(rnd: () => number): string {
  return rnd() < 0.1 ? pick(rnd, [' # c', '  #x: y', ' #', '#c']) : '';
}

/** Block style with random indentation widths, compact or indented sequences, flow parts, comments, blank lines. */
function block(rnd: () => number, v: V, indent: number, out: string[]): void {
  const pad = ' '.repeat(indent);
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (rnd() < 0.05) out.push(pick(rnd, ['', '  ', `${pad}# note`, '# col0']));
      const key = scalarText(rnd, k);
      if (x !== null && typeof x === 'object' && rnd() < 0.7 && (Array.isArray(x) ? x.length : Object.keys(x).length) > 0) {
        out.push(`${pad}${key}:${comment(rnd)}`);
        const compact = Array.isArray(x) && rnd() < 0.5;
        block(rnd, x, compact ? indent : indent + pick(rnd, [1, 2, 2, 4]), out);
      } else out.push(`${pad}${key}: ${flow(rnd, x)}${comment(rnd)}`.replace(/ $/, rnd() < 0.5 ? '' : ' '));
    }
  } else if (Array.isArray(v)) {
    for (const x of v) {
      if (x !== null && typeof x === 'object' && !Array.isArray(x) && Object.keys(x).length > 0 && rnd() < 0.7) {
        const sub: string[] = [];
        const w = pick(rnd, [1, 2, 3]);
        block(rnd, x, indent + 1 + w, sub);
        const first = sub.findIndex((l) => l.trim() !== '' && !l.trim().startsWith('#'));
        if (first < 0) continue;
        sub[first] = `${pad}-${' '.repeat(w)}${sub[first]!.slice(indent + 1 + w)}`;
        out.push(...sub);
      } else if (x !== null && typeof x === 'object' && rnd() < 0.3) {
        out.push(`${pad}-${comment(rnd)}`);
        block(rnd, x, indent + 2, out);
      } else out.push(`${pad}- ${flow(rnd, x)}${comment(rnd)}`);
    }
  } else out.push(`${pad}${flow(rnd, v)}`);
}

function randomText(rnd: () => number): string {
  const docs: string[] = [];
  for (let i = Math.floor(rnd() * 4); i >= 0; i--) {
    const lines: string[] = [];
    const v = rnd() < 0.9 ? value(rnd, 0) : null;
    const root: V = v !== null && typeof v === 'object' && !Array.isArray(v) ? v : rnd() < 0.8 ? { kind: 'Pod', spec: v } : v;
    block(rnd, root, rnd() < 0.05 ? 2 : 0, lines);
    docs.push(lines.join('\n'));
  }
  let text = (rnd() < 0.3 ? pick(rnd, ['---\n', '# head\n', '\n# head\n---\n', '# a\n\n']) : '') + docs.join(pick(rnd, ['\n---\n', '\n---\n\n', '\n\n---\n# c\n', '\n--- \n', '\n...\n---\n']));
  if (rnd() < 0.3) text += pick(rnd, ['\n', '\n---\n', '\n# tail\n', '\n\n']);
  return text;
}

/** Small random edits: where the fast path still accepts, it must still agree. */
function mutate(rnd: () => number, text: string): string {
  const chars = [' ', '  ', '\n', ':', '- ', '#', "'", '"', '{', '}', '[', ']', ',', '\t', '\r', 'x', '&a ', '*a', '!', '|', '>', '?', '---', '\\', '@', '%'];
  let t = text;
  for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) {
    const at = Math.floor(rnd() * (t.length + 1));
    const r = rnd();
    if (r < 0.5) t = t.slice(0, at) + pick(rnd, chars) + t.slice(at);
    else if (r < 0.8) t = t.slice(0, at) + t.slice(at + 1 + Math.floor(rnd() * 3));
    else {
      const lines = t.split('\n');
      const i = Math.floor(rnd() * lines.length);
      lines[i] = ' '.repeat(Math.floor(rnd() * 3)) + lines[i]!.trimStart();
      t = lines.join('\n');
    }
  }
  return t;
}

describe('simple-yaml: the fast reader agrees with the yaml library wherever it accepts', () => {
  it('on edge cases written out', () => {
    const cases = [
      '',
      '\n',
      '# only\n',
      '---\n',
      'a: 1\n---\n',
      'a: 1\n---\n---\nb: 2\n',
      '# c\n---\na: 1\n',
      '# c\n\na: 1\n---\n\n# x\nb: 2\n',
      '  a: 1\n  b: 2\n',
      'a:\n- 1\n- 2\nb: x\n',
      'a:\n  - {x: 1}\n  -   y: 2\n      z: [3, fd00::1]\nc: d\n',
      "a: {b: [c, {d: e}], f: \"g h\", i: 'j''k'}\n",
      'a:\nb:\n  c:\n',
      'a: b # c\nd: e#f\n',
      'a: 1.50\nb: 1e3\nc: -0\nd: +12\ne: 007\n',
      'a: 2020-01-01\nb: yes\nc: ~\n',
      'a: x\n b: y\n',
      'a: x\n  y\n',
      'a: [1,\n 2]\n',
      'a: b: c\n',
      'a: 0x1F\n',
      'a: &x 1\n',
      'a: !!str 1\n',
      'a: |\n  x\n',
      '"a": 1\n\'b\': 2\n',
      'a: 1\na: 2\n',
      '- a\n- b\n',
      'a\n',
      'a: "x\\ny"\n',
      'a:\n  -\n    b: 1\n  -\n  - c\n',
      'a: x ]\nb: x}\nc: a,b\n',
      '- --flag=x\n- -[a\n- {a: 1}\n- [b]\n',
      'k: [--x, -{a]\n',
      'k: ---\nj: ...\n',
      'k: {a: fd00::}\n',
      'k: [a:b]\n',
      'k: {a: b:c}\n',
      'k: - x\n',
      'k: -x\n',
      'k: --x\n',
      'k: [-x, -1]\n',
      '? a\n: b\n',
      'a: 1\n...\n',
      '%YAML 1.2\n---\na: 1\n',
    ];
    let accepted = 0;
    for (const c of cases) if (check(c)) accepted++;
    expect(accepted).toBeGreaterThan(20);
    // Absurd nesting overflows the fast reader's stack: it hands the text over instead of failing.
    expect(parseSimpleYaml(`a: ${'['.repeat(200_000)}${']'.repeat(200_000)}\n`)).toBeUndefined();
  });

  it('on 3000 random texts and 3000 mutations of them', () => {
    const rnd = prng(42);
    let accepted = 0;
    let acceptedMutated = 0;
    for (let i = 0; i < 3000; i++) {
      const text = randomText(rnd);
      if (check(text)) accepted++;
      if (check(mutate(rnd, text))) acceptedMutated++;
    }
    // Both sides are exercised: much is accepted (the property is tested), much falls back.
    expect(accepted).toBeGreaterThan(300);
    expect(acceptedMutated).toBeGreaterThan(150);
    expect(accepted).toBeLessThan(3000);
  });

  it('takes the fast path for config files of the usual shape, with the same documents and problems as the yaml library', () => {
    const bad = 'apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: default}\nspec: {nodeName: node1, serviceAccountName: 42}\nstatus: {podIP: 198.18.9.9}\n';
    const deploy = ['deploy/smesh-agent.yaml', 'deploy/smesh-control.yaml'].map((f) => readFileSync(join(__dirname, '../../../..', f), 'utf8'));
    for (const text of [NODES_YAML, WORKLOADS_YAML, BASE + GOOD, bad, ...deploy]) {
      expect(parseSimpleYaml(text), text.slice(0, 80)).toBeDefined();
      expect(check(text)).toBe(true);
      const p1: ConfigProblem[] = [];
      const p2: ConfigProblem[] = [];
      expect(isDeepStrictEqual(parseConfigText('f.yaml', text, p1), parseConfigText('f.yaml', text, p2, { fastPath: false }))).toBe(true);
      expect(p1).toEqual(p2);
    }
    // The scale bench's shape.
    const bench = [
      'apiVersion: v1\nkind: Service\nmetadata: {name: s1, namespace: ns-1}\nspec: {clusterIP: 198.19.0.3, selector: {app: s1}, ports: [{name: tcp, port: 80, targetPort: 8080, protocol: TCP}]}',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p5, namespace: ns-1, labels: {app: s1}}\nspec: {nodeName: fake7, serviceAccountName: sa-1}\nstatus: {podIP: 198.18.40.7}',
    ].join('\n---\n');
    expect(check(bench)).toBe(true);
  });
});
