// The native HBONE engine with --fair-share off (FIFO relay order): the same bytes/s and DSCP socket tests as hbone-qos.test.ts, so the path that resumes a throttled stream without the scheduler is covered too.
import { describe } from 'vitest';
import { hboneEngine } from '../../agent/native/hbone';
import type { HboneEngine } from '../../agent/native/hbone-types';
import { useAddonPath } from '../../agent/native/raw';
import { describeQosSockets } from './qos-sockets';

if (process.env.SMESH_NATIVE_ADDON) useAddonPath(process.env.SMESH_NATIVE_ADDON);

const engine: HboneEngine | undefined = hboneEngine();

(engine?.qosState ? describe : describe.skip)('native HBONE engine QoS, fair share off', () => {
  describeQosSockets(engine!, false);
});
