// piscina first tries require() on a worker file; Node 20's require() of an ES module can abort the
// process (v8 IsGraphAsync on a module that failed to instantiate), so from TypeScript sources the
// entry is this CommonJS file, which loads the ES module shim with import() on first use.
'use strict';

let loaded;

module.exports = async function runTask(task) {
  loaded ??= import('./worker-source.mjs').then((module) => module.default);
  return (await loaded)(task);
};
