// Throughput of two servers driven at the same time, each by its own load generator, unpinned: the pairs the
// targets compare (tsgunicorn -w 2 against node:cluster, over HTTP/1.1 and HTTP/2). Run one after the other, the
// same server's req/s moves by tens of percent from pass to pass here, with the machine's speed (a virtual
// machine: lib/cpu.mjs says more); at the same time, both meet the same machine, and the ratio of what each served
// in the same seconds is what is left: which of them gets more done with the same CPUs.
import { median } from './targets.mjs';

/**
 * On each of `starts` fresh starts of both servers (two processes of one server can differ for as long as they
 * run, with what V8 compiled for each: lib/cpu.mjs), warms each up, then runs `passes` loads per mode on both at
 * once (the other load started first every other pass). Returns per mode each server's req/s in every pass, their
 * medians, every pass's ratio of the first server's req/s to the second's, and the median of those ratios.
 * @param {[object, object]} specs the server measured and its peer (lib/servers.mjs specs)
 * @param {{ starts: number, passes: number, modes: string[], startContext: (spec: object) => Promise<object>,
 *   warmUp: (running: object) => Promise<unknown>, load: (running: object, mode: string) => Promise<{ rps: number, errors: number, errorDetail: string }>,
 *   log: (line: string) => void }} options
 */
export async function throughputSideBySide(specs, { starts, passes, modes, startContext, warmUp, load, log }) {
  const rps = Object.fromEntries(modes.map((mode) => [mode, [[], []]]));
  const errors = Object.fromEntries(modes.map((mode) => [mode, []]));
  for (let start = 0; start < starts; start++) {
    const running = [];
    try {
      for (const spec of specs) {
        running.push(await spec.start(await startContext(spec)));
        await warmUp(running.at(-1));
      }
      for (const mode of modes) {
        for (let pass = 0; pass < passes; pass++) {
          const started = [];
          for (const i of pass % 2 === 0 ? [0, 1] : [1, 0]) started[i] = load(running[i], mode);
          const outcomes = await Promise.all(started);
          outcomes.forEach((outcome, i) => {
            rps[mode][i].push(outcome.rps);
            if (outcome.errors > 0) errors[mode].push(`${specs[i].label}: ${outcome.errors} (${outcome.errorDetail})`);
          });
        }
      }
    } catch (err) {
      log(`bench: side by side, ${specs.map((s) => s.label).join(' / ')} failed: ${err.message.split('\n', 1)[0]}`);
      return { specs, error: `${err.message}${running.map((r) => `\n--- server output ---\n${r.output()}`).join('')}` };
    } finally {
      for (const server of running) await server.stop();
    }
  }
  const modesOut = {};
  for (const mode of modes) {
    const ratios = rps[mode][0].map((own, pass) => own / rps[mode][1][pass]);
    modesOut[mode] = { rps: rps[mode].map(median), passesRps: rps[mode], ratios, ratio: median(ratios), errors: errors[mode] };
    log(`bench: side by side, ${specs[0].label} / ${specs[1].label}, ${mode}: ${median(ratios).toFixed(3)}×`);
  }
  return { specs, modes: modesOut };
}
