// What `tsgunicorn status` says of instances that are not running: a failed
// unit's reason and the command that starts it again (with reset-failed only
// after systemd's start limit), and the columns of the list.
import { describe, expect, it } from 'vitest';
import { formatInstances } from '../../src/control/format.js';
import { failureAdvice, type UnitState } from '../../src/control/instances.js';

const unit = (state: Partial<UnitState>): UnitState => ({
  active: 'failed',
  sub: 'failed',
  result: 'exit-code',
  restarts: 0,
  exitStatus: 2,
  since: 'Mon 2026-12-07 13:02:03 UTC',
  ...state,
});

describe('failureAdvice', () => {
  it('names the exit code, where to read why, and systemctl start', () => {
    expect(failureAdvice('shop', unit({}))).toBe(
      'failed at Mon 2026-12-07 13:02:03 UTC: exit 2 (bad settings); journalctl -u tsgunicorn@shop.service -p err says why; once fixed: systemctl start tsgunicorn@shop.service',
    );
  });

  it('after the start limit, resets both units first', () => {
    expect(failureAdvice('shop', unit({ result: 'start-limit-hit' }))).toMatch(
      /: start-limit-hit; .* once fixed: systemctl reset-failed tsgunicorn@shop\.service tsgunicorn@shop\.socket && systemctl start tsgunicorn@shop\.service$/,
    );
  });

  it('says nothing of a unit that has not failed', () => {
    expect(failureAdvice('shop', unit({ active: 'inactive', sub: 'dead', result: 'success' }))).toBeNull();
  });
});

describe('formatInstances', () => {
  it('shows stopped and failed instances with restarts and the last failure', () => {
    const failed = unit({ restarts: 2 });
    const text = formatInstances([
      { name: 'idle', unit: null, state: 'stopped', lastFailure: null },
      { name: 'shop', unit: failed, state: 'failed', lastFailure: failureAdvice('shop', failed) },
    ]);
    const [header, idle, shop] = text.trimEnd().split('\n');
    expect(header).toMatch(/^NAME +PID +UPTIME +WORKERS +REQ\/S +P99 +RSS +HEALTH +RESTARTS +STATE +LAST FAILURE$/);
    expect(idle).toMatch(/^idle( +-){7} +0 +stopped +-$/);
    expect(shop).toMatch(/^shop( +-){7} +2 \(2 master\) +failed +failed at .*: exit 2 \(bad settings\);/);
  });
});
