// Fast reader for the plain subset of YAML that Kubernetes-style config files use; anything outside it returns undefined so the caller parses with the `yaml` library (same values, lines and errors).
/*
 * Why: the `yaml` library reads ~0.7 MB/s (60k documents, 10 MiB: ~15 s); this reader does the common shape of
 * config files in a fraction of that. It accepts only what it can read exactly as `yaml` (YAML 1.2 core schema,
 * toJS()) does and gives up on the whole file at the first doubt, so results never differ:
 * - documents split by bare `---` lines (no directives, no `...`, no content after `---`);
 * - block mappings and block sequences (space indentation, `- key: v` compact mappings, sequences at their
 *   key's indentation); keys are plain words (letters, digits, `_ . / -`) or simple quoted strings;
 * - values on one line: plain scalars, single- or double-quoted scalars without escapes, flow mappings and
 *   sequences (`{a: 1, b: [x, y]}`) closed on the same line; `# comments`.
 * Out (→ undefined): tabs, CR, control characters, anchors, aliases, tags, block scalars, multi-line scalars
 * or flow collections, complex keys, duplicate keys, `<<`, `__proto__`, octal/hex/inf/nan numbers, any error.
 */

/** One document: the line `yaml` reports it at (its `---`, else its first content line) and its toJS() value. */
export interface SimpleYamlDoc {
  readonly line: number;
  readonly value: unknown;
}

class OutOfSubset extends Error {}
const OUT = new OutOfSubset();

function out(): never {
  throw OUT;
}

interface Line {
  /** 1-based line number in the file. */
  readonly no: number;
  indent: number;
  text: string;
}

// Characters `yaml` treats specially or that would need its exact handling: tabs, CR, other C0/C1 controls,
// BOM, line/paragraph separators.
// eslint-disable-next-line no-control-regex
const UNSUPPORTED_CHARS = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]/;
const KEY = /^[A-Za-z0-9_][A-Za-z0-9_./-]*$/;
const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const INT = /^[-+]?[0-9]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;
const FLOAT_EXP = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;
/** Other core-schema forms (octal, hex, inf, nan): left to `yaml`. */
const OTHER_NUMBER = /^(?:0o[0-7]+|0x[0-9a-fA-F]+|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;

/** Strips trailing spaces only (String.trimEnd also strips U+00A0 and other Unicode spaces, which YAML keeps). */
function trimSpacesEnd(s: string): string {
  let e = s.length;
  while (e > 0 && s.charCodeAt(e - 1) === 32) e--;
  return e === s.length ? s : s.slice(0, e);
}

/** First characters of every non-string plain scalar of the core schema (null, bool, numbers). */
const MAYBE_NOT_STRING = new Set('~nNtTfF0123456789+-.');

/** A plain scalar as the core schema resolves it. */
function plain(s: string): unknown {
  if (s.length > 0 && !MAYBE_NOT_STRING.has(s[0]!)) return s;
  if (NULL.test(s)) return null;
  if (BOOL.test(s)) return s[0] === 't' || s[0] === 'T';
  if (INT.test(s)) return parseInt(s, 10);
  if (FLOAT.test(s) || FLOAT_EXP.test(s)) return parseFloat(s);
  if (OTHER_NUMBER.test(s)) out();
  return s;
}

/** A plain scalar may not start with an indicator (`-` only when followed by a non-space). */
function plainStartOk(s: string, i: number): boolean {
  const c = s[i];
  if (c === undefined) return false;
  if (c === '-') {
    const n = s[i + 1];
    return n !== undefined && n !== ' ' && n !== ',' && n !== '[' && n !== ']' && n !== '{' && n !== '}';
  }
  return !'?:,[]{}#&*!|>\'"%@`'.includes(c);
}

/** A mapping key: plain words or a quoted string; never resolves to anything but a string. */
function checkKey(k: string): string {
  if (k.length === 0 || k.length > 1000 || k === '__proto__' || k === '<<') out();
  return k;
}

/** Plain keys already checked (config files repeat a few hundred keys thousands of times). */
const goodKeys = new Set<string>();

function plainKey(k: string): string {
  if (goodKeys.has(k)) return k;
  if (!KEY.test(k)) out();
  if (typeof plain(k) !== 'string') out();
  checkKey(k);
  if (goodKeys.size < 10000) goodKeys.add(k);
  return k;
}

/** Whether `obj` already has `key` as its own property (values are never undefined here). */
function hasKey(obj: Record<string, unknown>, key: string): boolean {
  return obj[key] !== undefined && Object.prototype.hasOwnProperty.call(obj, key);
}

/** A quoted scalar starting at `s[i]`; returns the value and the index after the closing quote. */
function quoted(s: string, i: number): [string, number] {
  const q = s[i];
  if (q === '"') {
    const end = s.indexOf('"', i + 1);
    if (end < 0) out();
    const v = s.slice(i + 1, end);
    if (v.includes('\\')) out();
    return [v, end + 1];
  }
  let v = '';
  let j = i + 1;
  for (;;) {
    const end = s.indexOf("'", j);
    if (end < 0) out();
    v += s.slice(j, end);
    if (s[end + 1] === "'") {
      v += "'";
      j = end + 2;
      continue;
    }
    return [v, end + 1];
  }
}

/** Only spaces or a ` # comment` may follow a complete value. */
function restOk(s: string, i: number): void {
  let j = i;
  while (s[j] === ' ') j++;
  if (j === s.length) return;
  if (s[j] === '#' && j > i) return;
  out();
}

/** By char code: flow indicators (1), and what also ends a plain flow key: `:` and space (2). */
const STOP = new Uint8Array(128);
for (const c of ',[]{}') STOP[c.charCodeAt(0)] = 1;
STOP[58] = 2;
STOP[32] = 2;

/** A flow value at `s[i]` (after spaces); returns it and the index after it. */
function flowValue(s: string, i: number): [unknown, number] {
  while (s[i] === ' ') i++;
  const c = s[i];
  if (c === '{') return flowMap(s, i + 1);
  if (c === '[') return flowSeq(s, i + 1);
  if (c === '"' || c === "'") return quoted(s, i);
  if (!plainStartOk(s, i)) out();
  // A flow plain scalar ends at a flow indicator, `: `/`:` before an indicator, ` #`, or the line end.
  let j = i;
  for (; j < s.length; j++) {
    const ch = s.charCodeAt(j);
    if (ch < 128 && STOP[ch] === 1) break;
    if (ch === 58 /* : */) {
      const n = s.charCodeAt(j + 1); // NaN at the end
      if (!(n > 0) || n === 32 || (n < 128 && STOP[n] === 1)) break;
    }
    if (ch === 35 /* # */ && s.charCodeAt(j - 1) === 32) out();
  }
  if (s[j] === ':') out(); // a key where a value belongs (`[a: 1]`, `{a: b: c}`)
  const text = trimSpacesEnd(s.slice(i, j));
  if (text.length === 0) out();
  return [plain(text), j];
}

function flowKey(s: string, i: number): [string, number] {
  while (s[i] === ' ') i++;
  if (s[i] === '"' || s[i] === "'") {
    const [k, j] = quoted(s, i);
    return [checkKey(k), j];
  }
  let j = i;
  for (; j < s.length; j++) {
    const ch = s.charCodeAt(j);
    if (ch < 128 && STOP[ch] !== 0) break;
  }
  return [plainKey(s.slice(i, j)), j];
}

function flowMap(s: string, i: number): [Record<string, unknown>, number] {
  const obj: Record<string, unknown> = {};
  while (s[i] === ' ') i++;
  if (s[i] === '}') return [obj, i + 1];
  for (;;) {
    while (s[i] === ' ') i++;
    const jsonKey = s[i] === '"' || s[i] === "'";
    const [k, j] = flowKey(s, i);
    // `key: value`; after a quoted key the value may follow the `:` directly (JSON style: {"a":"b"}).
    if (s[j] !== ':' || (s[j + 1] !== ' ' && !(jsonKey && s[j + 1] !== undefined && s[j + 1] !== ',' && s[j + 1] !== '}'))) out();
    if (hasKey(obj, k)) out();
    const [v, after] = flowValue(s, j + 1);
    obj[k] = v;
    i = after;
    while (s[i] === ' ') i++;
    if (s[i] === '}') return [obj, i + 1];
    if (s[i] !== ',') out();
    i++;
    while (s[i] === ' ') i++;
    if (s[i] === '}' || s[i] === ',') out(); // trailing or doubled comma: left to `yaml`
  }
}

function flowSeq(s: string, i: number): [unknown[], number] {
  const arr: unknown[] = [];
  while (s[i] === ' ') i++;
  if (s[i] === ']') return [arr, i + 1];
  for (;;) {
    const [v, after] = flowValue(s, i);
    arr.push(v);
    i = after;
    while (s[i] === ' ') i++;
    if (s[i] === ']') return [arr, i + 1];
    if (s[i] !== ',') out();
    i++;
    while (s[i] === ' ') i++;
    if (s[i] === ']' || s[i] === ',') out();
  }
}

/** A value written on the key's (or the `- `'s) line, `s` starting at the value. */
function inlineValue(s: string): unknown {
  const c = s[0];
  if (c === '{' || c === '[' || c === '"' || c === "'") {
    const [v, j] = c === '{' ? flowMap(s, 1) : c === '[' ? flowSeq(s, 1) : quoted(s, 0);
    restOk(s, j);
    return v;
  }
  if (!plainStartOk(s, 0)) out();
  let end = s.length;
  const hash = s.indexOf(' #');
  if (hash >= 0) end = hash;
  const text = trimSpacesEnd(s.slice(0, end));
  if (text.includes(': ') || text.endsWith(':')) out();
  return plain(text);
}

/** Splits `key: rest` (rest may be empty); undefined when the line is not a mapping entry. */
function splitEntry(text: string): [string, string] | undefined {
  let key: string;
  let j: number;
  if (text[0] === '"' || text[0] === "'") {
    const [k, after] = quoted(text, 0);
    key = checkKey(k);
    j = after;
  } else {
    if (text[0] === '{' || text[0] === '[') return undefined; // a flow collection, not `key:`
    j = 0;
    while (j < text.length && text[j] !== ':' && text[j] !== ' ') j++;
    if (text[j] !== ':') return undefined;
    key = text.slice(0, j);
  }
  if (text[j] !== ':') out();
  const n = text[j + 1];
  if (n !== undefined && n !== ' ') return undefined;
  if (text[0] !== '"' && text[0] !== "'") plainKey(key);
  let v = j + 1;
  while (text[v] === ' ') v++;
  return [key, text.slice(v)];
}

function isSeqItem(text: string): boolean {
  return text === '-' || text.startsWith('- ');
}

class BlockReader {
  i = 0;
  constructor(private readonly lines: Line[]) {}

  private peek(): Line | undefined {
    return this.lines[this.i];
  }

  /** The block starting at the current line (its indentation defines the block's). */
  block(): unknown {
    const l = this.peek()!;
    return isSeqItem(l.text) ? this.sequence(l.indent) : this.mapping(l.indent);
  }

  /** The value after `key:` / `-` with nothing else on the line: a nested block, or null. */
  private nested(parentIndent: number, allowSameIndentSeq: boolean): unknown {
    const n = this.peek();
    if (!n) return null;
    if (n.indent > parentIndent) return this.block();
    if (allowSameIndentSeq && n.indent === parentIndent && isSeqItem(n.text)) return this.sequence(parentIndent);
    return null;
  }

  /** After a value written on its line, nothing may continue it on deeper lines. */
  private noContinuation(indent: number): void {
    const n = this.peek();
    if (n && n.indent > indent) out();
  }

  mapping(indent: number): Record<string, unknown> {
    const obj: Record<string, unknown> = {};
    for (let l = this.peek(); l && l.indent >= indent; l = this.peek()) {
      if (l.indent > indent || isSeqItem(l.text)) out();
      const entry = splitEntry(l.text);
      if (!entry) out();
      const [key, rest] = entry;
      if (hasKey(obj, key)) out();
      this.i++;
      if (rest === '' || rest[0] === '#') obj[key] = this.nested(indent, true);
      else {
        obj[key] = inlineValue(rest);
        this.noContinuation(indent);
      }
    }
    return obj;
  }

  sequence(indent: number): unknown[] {
    const arr: unknown[] = [];
    for (let l = this.peek(); l && l.indent >= indent; l = this.peek()) {
      if (l.indent > indent) out();
      if (!isSeqItem(l.text)) break; // back to the mapping this sequence is the value of
      let k = 1;
      while (l.text[k] === ' ') k++;
      const content = l.text.slice(k);
      if (content === '' || content[0] === '#') {
        this.i++;
        arr.push(this.nested(indent, false));
        continue;
      }
      if (isSeqItem(content)) out(); // `- - x`
      const itemIndent = indent + k;
      if (splitEntry(content)) {
        // `- key: value`: a mapping whose first entry shares the `-` line; the rest sit at the key's column.
        l.indent = itemIndent;
        l.text = content;
        arr.push(this.mapping(itemIndent));
      } else {
        this.i++;
        arr.push(inlineValue(content));
        this.noContinuation(indent);
      }
    }
    return arr;
  }
}

function readDocument(lines: Line[]): unknown {
  if (lines.length === 0) return null;
  const r = new BlockReader(lines);
  const v = r.block();
  if (r.i !== lines.length) out();
  return v;
}

/** Reads `text` if it is in the subset (see the top of this file); undefined means "use the yaml library". */
export function parseSimpleYaml(text: string): SimpleYamlDoc[] | undefined {
  if (UNSUPPORTED_CHARS.test(text)) return undefined;
  try {
    const docs: SimpleYamlDoc[] = [];
    let current: { line: number; lines: Line[] } | undefined;
    const raw = text.split('\n');
    for (let n = 0; n < raw.length; n++) {
      const t = raw[n]!;
      if (t === '---') {
        if (current) docs.push({ line: current.line, value: readDocument(current.lines) });
        current = { line: n + 1, lines: [] };
        continue;
      }
      if (t.startsWith('---') || t.startsWith('...') || t.startsWith('%')) out();
      let indent = 0;
      while (t.charCodeAt(indent) === 32) indent++;
      if (indent === t.length || t[indent] === '#') continue; // blank or comment line
      if (!current) current = { line: n + 1, lines: [] }; // the first document needs no `---`
      current.lines.push({ no: n + 1, indent, text: trimSpacesEnd(t.slice(indent)) });
    }
    if (current) docs.push({ line: current.line, value: readDocument(current.lines) });
    return docs;
  } catch {
    // Out of the subset, or anything unexpected (e.g. a stack overflow on absurdly deep nesting): `yaml` decides.
    return undefined;
  }
}
