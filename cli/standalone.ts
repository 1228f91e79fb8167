// Standalone mode: the control plane `smesh control` runs, started in the agent's process over a config directory, for `smesh agent --standalone`.
import { randomBytes } from 'node:crypto';
import type { EmbeddedControlPlane } from '../agent/main';
import { controlSpiffeId } from '../core/identity/spiffe';

/**
 * Standalone runs the very control plane `smesh control` runs, in this process, on loopback, with a one-time token
 * naming this node: the agent then takes the same xDS + CSR path as against a remote control plane.
 */
export const embeddedControlPlane: EmbeddedControlPlane = async (opts, logs, cleanups) => {
  const { startControlPlane } = await import('../control/main');
  const { FileSource } = await import('../control/sources/files');
  const token = randomBytes(24).toString('hex');
  const cp = await startControlPlane({
    source: new FileSource({ dir: opts.configDir, logger: logs.child('control-files') }),
    caDir: opts.caDir,
    tokens: { [token]: opts.nodeName },
    listen: '127.0.0.1:0',
    certTtlSeconds: opts.certTtlSeconds,
    logger: logs.child('control'),
  });
  cleanups.push(() => cp.close());
  return { address: `127.0.0.1:${cp.port}`, anchorsPem: cp.trustBundlePem, token: () => token, controlPlaneId: controlSpiffeId(cp.ca.trustDomain) };
};
