// smesh's version (package.json), for `smesh version`, the agent's xDS user_agent_version and the control plane identifier.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

let cached: string | undefined;

/** Version from package.json, found from both the source tree (core/) and the build (dist/core/); 'unknown' if neither has it. */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  for (const p of [join(__dirname, '..', 'package.json'), join(__dirname, '..', '..', 'package.json')]) {
    try {
      const pkg = JSON.parse(readFileSync(p, 'utf8'));
      if (pkg.name === 'smesh') return (cached = String(pkg.version));
    } catch {
      // try the next location
    }
  }
  return (cached = 'unknown');
}
