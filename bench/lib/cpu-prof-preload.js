// Preload (`node --require`) for bench agents: CPU-profiles the process from start to exit and writes <dir>/agent-<pid>.cpuprofile (SMESH_CPU_PROF_DIR).
'use strict';
const fs = require('fs');
const path = require('path');
const inspector = require('inspector');

const dir = process.env.SMESH_CPU_PROF_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.setSamplingInterval', { interval: 200 });
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.on('exit', () => {
    // A main-thread inspector session answers synchronously, so this works in an 'exit' handler.
    session.post('Profiler.stop', (err, res) => {
      if (err || !res) return;
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `agent-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
