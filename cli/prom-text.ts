// Parses the Prometheus text exposition format (what the agent's /stats/prometheus serves) into samples, for `smesh top`.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Samples of every non-comment line; a line that does not parse is skipped (the exposition may grow new forms). */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = parseLine(line);
    if (s) out.push(s);
  }
  return out;
}

function parseLine(line: string): Sample | undefined {
  const nameEnd = line.search(/[{\s]/);
  if (nameEnd <= 0) return undefined;
  const name = line.slice(0, nameEnd);
  const labels: Record<string, string> = {};
  let i = nameEnd;
  if (line[i] === '{') {
    i++;
    while (i < line.length && line[i] !== '}') {
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return undefined;
      const key = line.slice(i, eq).trim();
      let j = eq + 2;
      let value = '';
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length) {
          const next = line[++j];
          value += next === 'n' ? '\n' : next;
        } else value += line[j];
      }
      if (j >= line.length) return undefined;
      labels[key] = value;
      i = j + 1;
      if (line[i] === ',') i++;
    }
    if (line[i] !== '}') return undefined;
    i++;
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const value = rest[0] === '+Inf' ? Infinity : rest[0] === '-Inf' ? -Infinity : Number(rest[0]);
  if (rest[0] === undefined || rest[0] === '' || (Number.isNaN(value) && rest[0] !== 'NaN')) return undefined;
  return { name, labels, value };
}
