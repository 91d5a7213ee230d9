// The warning when the config's bind and the sockets systemd passes disagree
// (the e2e suite shows it under the real units).
import { describe, expect, it } from 'vitest';
import { address } from '../../src/settings/kinds.js';
import { bindDisagreement } from '../../src/systemd/bind-check.js';

const a = (text: string) => address.parse(text);

describe('bindDisagreement', () => {
  it('is null when the TCP addresses agree, in any order, localhost as 127.0.0.1', () => {
    expect(bindDisagreement([a('localhost:9001'), a(':8000')], [a('0.0.0.0:8000'), a('127.0.0.1:9001')], 'x.ini:1', null)).toBeNull();
  });

  it('names both sides and the exact command that applies bind', () => {
    expect(bindDisagreement([a('127.0.0.1:9001')], [a('[::]:8000')], '/etc/tsgunicorn/myapp.ini:2', 'tsgunicorn@myapp.service')).toBe(
      'bind = 127.0.0.1:9001 (/etc/tsgunicorn/myapp.ini:2) is not where the sockets from tsgunicorn@myapp.socket listen ([::]:8000): ' +
        'serving on those; to apply bind: sudo systemctl daemon-reload && sudo systemctl restart tsgunicorn@myapp.socket tsgunicorn@myapp.service',
    );
  });

  it('leaves out what it cannot compare: unix sockets whose path systemd does not tell', () => {
    expect(bindDisagreement([a('unix:/run/x.sock'), a('127.0.0.1:8000')], [null, a('127.0.0.1:8000')], 'x.ini:1', null)).toBeNull();
  });
});
