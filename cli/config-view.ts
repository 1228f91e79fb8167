// `smesh config workloads|services|policies|certificates`: one kind of the agent's state from /config_dump, as a table
// or, with -o json|yaml, the agent's own objects unchanged.
import { SmeshError } from '../core/errors';
import { adminJson, type AdminTarget } from './admin-client';
import type { ConfigDump, DumpCertificate, DumpPolicy, DumpService, DumpWorkload } from './config-dump';
import { formatData, formatDuration, formatTable, type OutputFormat } from './output';

export const CONFIG_KINDS = ['workloads', 'services', 'policies', 'certificates'] as const;
export type ConfigKind = (typeof CONFIG_KINDS)[number];

export function isConfigKind(s: string | undefined): s is ConfigKind {
  return (CONFIG_KINDS as readonly string[]).includes(s ?? '');
}

const orDash = (s: string | undefined) => (s === undefined || s === '' ? '-' : s);

function workloadRows(ws: readonly DumpWorkload[]): string[][] {
  return [...ws]
    .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
    .map((w) => [orDash(w.namespace), orDash(w.name), orDash(w.node), orDash(w.ip), w.meshed ? 'HBONE' : w.tunnel === 'legacy_istio_mtls' ? 'ISTIO_MTLS' : 'NONE', orDash(w.identity)]);
}

function serviceRows(ss: readonly DumpService[]): string[][] {
  return [...ss]
    .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
    .map((s) => [
      orDash(s.namespace),
      orDash(s.name),
      orDash((s.vips ?? []).join(',')),
      orDash((s.ports ?? []).map((p) => `${p.port}${p.targetPort !== undefined && p.targetPort !== p.port ? `→${p.targetPort}` : ''}${p.appProtocol ? `/${p.appProtocol}` : ''}`).join(',')),
      String(s.endpointUids?.length ?? 0),
    ]);
}

function policyRows(ps: readonly DumpPolicy[]): string[][] {
  return [...ps]
    .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
    .map((p) => [
      orDash(p.namespace),
      orDash(p.name),
      orDash(p.action),
      p.selector && Object.keys(p.selector).length
        ? Object.entries(p.selector)
            .map(([k, v]) => `${k}=${v}`)
            .join(',')
        : orDash(p.scope),
      String(p.rules?.length ?? 0),
    ]);
}

function certificateRows(cs: readonly DumpCertificate[], nowMs: number): string[][] {
  return [...cs]
    .sort((a, b) => (a.spiffeId ?? '').localeCompare(b.spiffeId ?? ''))
    .map((c) => {
      const t = c.notAfter ? Date.parse(c.notAfter) : NaN;
      return [orDash(c.spiffeId), orDash(c.serial), orDash(c.notAfter), Number.isNaN(t) ? '-' : formatDuration((t - nowMs) / 1000), orDash(c.issuer?.subject)];
    });
}

/** Pure: the command's output for one kind (tested with fixed input and clock). */
export function formatConfig(kind: ConfigKind, dump: ConfigDump, output: OutputFormat, nowMs: number): string {
  const items: readonly unknown[] = (kind === 'workloads' ? dump.workloads : kind === 'services' ? dump.services : kind === 'policies' ? dump.policies : dump.certificates) ?? [];
  if (output !== 'table') return formatData(items, output);
  switch (kind) {
    case 'workloads':
      return formatTable(['NAMESPACE', 'NAME', 'NODE', 'IP', 'PROTOCOL', 'IDENTITY'], workloadRows(dump.workloads ?? []));
    case 'services':
      return formatTable(['NAMESPACE', 'NAME', 'VIPS', 'PORTS', 'ENDPOINTS'], serviceRows(dump.services ?? []));
    case 'policies':
      return formatTable(['NAMESPACE', 'NAME', 'ACTION', 'SELECTOR', 'RULES'], policyRows(dump.policies ?? []));
    case 'certificates':
      return formatTable(['IDENTITY', 'SERIAL', 'NOT AFTER', 'EXPIRES IN', 'ISSUER'], certificateRows(dump.certificates ?? [], nowMs));
  }
}

export async function runConfig(admin: AdminTarget, kind: string | undefined, output: OutputFormat, write: (s: string) => void): Promise<number> {
  if (!isConfigKind(kind))
    throw new SmeshError('SMESH_ERR_CONFIG', `smesh config: ${kind === undefined ? 'missing kind' : `unknown kind ${JSON.stringify(kind)}`}: expected one of ${CONFIG_KINDS.join(', ')}`);
  const dump = await adminJson<ConfigDump>(admin, '/config_dump');
  if (kind === 'policies' && dump.policies === undefined) throw new SmeshError('SMESH_ERR_CONNECT', "smesh config policies: this agent's /config_dump has no policies (an older agent)");
  write(formatConfig(kind, dump, output, Date.now()));
  return 0;
}
