// A pids-limited cgroup (cgroup v2's pids controller, or v1's pids hierarchy) to
// move a process into: forks beyond pids.max fail with EAGAIN, as under a
// unit's TasksMax=. Needs root and a writable cgroup filesystem.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface PidsCgroup {
  /** Moves a process (all its threads) in; its later children start there too. */
  add(pid: number): void;
  /** Tasks (threads) in it now. */
  current(): number;
  setMax(max: number | 'max'): void;
  /** How many forks and thread creations the limit refused so far. */
  refused(): number;
  remove(): void;
}

/** Where a child cgroup with a pids limit can be made here, or why not. */
export function pidsCgroupRoot(): string | { unavailable: string } {
  if (process.getuid?.() !== 0) return { unavailable: 'not root' };
  const v2 = '/sys/fs/cgroup';
  if (existsSync(path.join(v2, 'cgroup.controllers'))) {
    if (!readFileSync(path.join(v2, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('pids'))
      return { unavailable: 'no pids controller in cgroup v2' };
    return v2;
  }
  const v1 = '/sys/fs/cgroup/pids';
  return existsSync(path.join(v1, 'cgroup.procs')) ? v1 : { unavailable: 'no pids cgroup hierarchy mounted' };
}

export function createPidsCgroup(root: string, name: string): PidsCgroup {
  if (existsSync(path.join(root, 'cgroup.subtree_control'))) {
    // v2: the parent hands the controller down.
    writeFileSync(path.join(root, 'cgroup.subtree_control'), '+pids');
  }
  const dir = path.join(root, name);
  mkdirSync(dir);
  const file = (f: string) => path.join(dir, f);
  return {
    add: (pid) => writeFileSync(file('cgroup.procs'), String(pid)),
    current: () => Number(readFileSync(file('pids.current'), 'utf8')),
    setMax: (max) => writeFileSync(file('pids.max'), String(max)),
    refused: () => Number(/^max (\d+)/m.exec(readFileSync(file('pids.events'), 'utf8'))?.[1] ?? 0),
    remove: () => rmdirSync(dir),
  };
}
