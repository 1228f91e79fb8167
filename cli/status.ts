// `smesh status`: the node agent at a glance from its admin port — readiness, BPF links, enrolled pods, control plane,
// certificate expiry and what needs attention (warnings; exit code 1 when not ready or unreachable).
import { adminJson, type AdminTarget } from './admin-client';
import type { ConfigDump, ReadyReport } from './config-dump';
import { formatData, formatDuration, type OutputFormat } from './output';

/** Certificates closer than this to expiry are a warning (agents renew at half-life, 12 h of the default 24 h). */
const CERT_WARN_SECONDS = 3600;
/** Trust anchors closer than this to expiry are a warning (time to rotate the root). */
const ANCHOR_WARN_SECONDS = 30 * 86400;

export interface StatusReport {
  readonly node: { name?: string; address?: string; pid?: number; uptimeSeconds?: number; nodeVersion?: string };
  readonly ready: boolean;
  readonly components: Readonly<Record<string, boolean>>;
  readonly controlPlane: { address?: string; connected: boolean; synced: boolean; connectedSince?: string; nacks: number; rejected: number; lastDisconnect?: unknown };
  readonly bpf: { enabled: boolean; links: string[]; reusedPins: boolean };
  readonly enrolledPods: Array<{ workload: string; netnsCookie?: string }>;
  readonly certificates: Array<{ identity: string; notAfter?: string; expiresInSeconds?: number }>;
  readonly trustAnchors: Array<{ subject?: string; notAfter?: string; expiresInSeconds?: number }>;
  readonly warnings: string[];
}

function secondsUntil(iso: string | undefined, nowMs: number): number | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : Math.floor((t - nowMs) / 1000);
}

/** Pure: the report from what the admin port served (tested with fixed input and clock). */
export function buildStatus(ready: ReadyReport, dump: ConfigDump, nowMs: number): StatusReport {
  const warnings: string[] = [];
  const missing = Object.entries(ready.components)
    .filter(([, ok]) => !ok)
    .map(([c]) => c);
  if (missing.length) warnings.push(`not ready: waiting for ${missing.join(', ')}`);
  const x = dump.xds ?? {};
  const nacks = (x.types ?? []).reduce((n, t) => n + (t.nacks ?? 0), 0);
  const rejected = (x.types ?? []).reduce((n, t) => n + (t.rejected?.length ?? 0), 0);
  if (!x.connected) warnings.push(`control plane ${x.address ?? '?'} not connected${x.nextRetryMs !== undefined ? ` (retry in ${x.nextRetryMs} ms)` : ''}: serving the last known state`);
  else if (!x.synced) warnings.push(`control plane ${x.address ?? '?'} connected but not synced yet`);
  if (rejected) warnings.push(`${rejected} xDS resource(s) rejected (NACKed): see smesh config -o json / the agent log`);
  const dp = dump.datapath ?? {};
  const links = [...(dp.attach?.links ?? [])];
  if (dp.disabled) warnings.push('BPF datapath disabled: no connection is redirected on this node');
  const byUid = new Map((dump.workloads ?? []).map((w) => [w.uid, w]));
  const enrolledPods = (dp.enrolledPods ?? []).map((p) => {
    const w = p.workload !== undefined ? byUid.get(p.workload) : undefined;
    return { workload: w?.namespace && w.name ? `${w.namespace}/${w.name}` : (p.workload ?? '?'), netnsCookie: p.cookie };
  });
  const unresolved = dump.netnsDiscovery?.unresolved?.length ?? 0;
  if (unresolved) warnings.push(`${unresolved} local pod(s) without a network namespace yet: not enrolled`);
  const certificates = (dump.certificates ?? []).map((c) => ({ identity: c.spiffeId ?? '?', notAfter: c.notAfter, expiresInSeconds: secondsUntil(c.notAfter, nowMs) }));
  for (const c of certificates) {
    if (c.expiresInSeconds !== undefined && c.expiresInSeconds < CERT_WARN_SECONDS) {
      warnings.push(
        `certificate ${c.identity} ${c.expiresInSeconds < 0 ? 'expired' : `expires in ${formatDuration(c.expiresInSeconds)}`}: renewal failing? (the CA or control plane may be unreachable)`,
      );
    }
  }
  const trustAnchors = (dump.trustAnchors ?? []).map((a) => ({ subject: a.subject, notAfter: a.notAfter, expiresInSeconds: secondsUntil(a.notAfter, nowMs) }));
  for (const a of trustAnchors) {
    if (a.expiresInSeconds !== undefined && a.expiresInSeconds < ANCHOR_WARN_SECONDS)
      warnings.push(`trust anchor ${a.subject ?? '?'} expires in ${formatDuration(a.expiresInSeconds)}: rotate the mesh root`);
  }
  return {
    node: { name: dump.node?.name, address: dump.node?.address, pid: ready.pid, uptimeSeconds: ready.uptimeSeconds, nodeVersion: ready.nodeVersion },
    ready: ready.ready,
    components: ready.components,
    controlPlane: {
      address: x.address,
      connected: x.connected === true,
      synced: x.synced === true,
      connectedSince: x.connectedSince,
      nacks,
      rejected,
      ...(x.lastDisconnect ? { lastDisconnect: x.lastDisconnect } : {}),
    },
    bpf: { enabled: !dp.disabled, links, reusedPins: dp.attach?.reused === true },
    enrolledPods,
    certificates,
    trustAnchors,
    warnings,
  };
}

export function formatStatusText(r: StatusReport): string {
  const lines: Array<[string, string]> = [];
  const comp = Object.entries(r.components)
    .map(([c, ok]) => `${c} ${ok ? 'ok' : 'WAITING'}`)
    .join(', ');
  lines.push([
    'Node',
    `${r.node.name ?? '?'} (${r.node.address ?? '?'}), agent pid ${r.node.pid ?? '?'}, up ${r.node.uptimeSeconds !== undefined ? formatDuration(r.node.uptimeSeconds) : '?'}, node ${r.node.nodeVersion ?? '?'}`,
  ]);
  lines.push(['Ready', `${r.ready ? 'yes' : 'NO'} (${comp})`]);
  const cp = r.controlPlane;
  lines.push([
    'Control plane',
    `${cp.address ?? '?'}: ${cp.connected ? `connected${cp.connectedSince ? ` since ${cp.connectedSince}` : ''}, ${cp.synced ? 'synced' : 'NOT synced'}` : 'NOT connected'}; ${cp.nacks} NACK(s)`,
  ]);
  const linkNames = r.bpf.links.map((l) => l.split('/').pop());
  lines.push(['BPF', r.bpf.enabled ? `${r.bpf.links.length} link(s)${r.bpf.reusedPins ? ' (pins reused from a previous agent)' : ''}: ${linkNames.join(', ')}` : 'disabled']);
  lines.push(['Enrolled pods', `${r.enrolledPods.length}${r.enrolledPods.length ? `: ${r.enrolledPods.map((p) => p.workload).join(', ')}` : ''}`]);
  const soonest = r.certificates.filter((c) => c.expiresInSeconds !== undefined).sort((a, b) => a.expiresInSeconds! - b.expiresInSeconds!)[0];
  lines.push(['Certificates', `${r.certificates.length}${soonest ? `, first expiry in ${formatDuration(soonest.expiresInSeconds!)} (${soonest.identity})` : ''}`]);
  const anchor = r.trustAnchors.filter((a) => a.expiresInSeconds !== undefined).sort((a, b) => a.expiresInSeconds! - b.expiresInSeconds!)[0];
  lines.push(['Trust anchors', `${r.trustAnchors.length}${anchor ? `, first expiry in ${formatDuration(anchor.expiresInSeconds!)}` : ''}`]);
  const width = Math.max(...lines.map(([k]) => k.length)) + 2;
  let out = lines.map(([k, v]) => `${(k + ':').padEnd(width)}${v}`).join('\n') + '\n';
  out += r.warnings.length ? `Warnings:\n${r.warnings.map((w) => `  - ${w}`).join('\n')}\n` : `${'Warnings:'.padEnd(width)}none\n`;
  return out;
}

/** Runs the command; the exit code is 0 when the agent is ready, 1 otherwise. */
export async function runStatus(admin: AdminTarget, output: OutputFormat, write: (s: string) => void): Promise<number> {
  const [ready, dump] = await Promise.all([adminJson<ReadyReport>(admin, '/ready'), adminJson<ConfigDump>(admin, '/config_dump')]);
  const report = buildStatus(ready, dump, Date.now());
  write(output === 'table' ? formatStatusText(report) : formatData(report, output));
  return report.ready ? 0 : 1;
}
