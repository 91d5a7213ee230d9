// The two local-time stamps Gunicorn writes. Each is rebuilt at most once per
// second (a busy worker logs many lines within one second), and recomputes the
// UTC offset then, so a DST change shows up within a second.

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

/** strftime's %z: "+HHMM"/"-HHMM" east of UTC. */
function utcOffset(d: Date): string {
  const east = -d.getTimezoneOffset();
  const abs = Math.abs(east);
  return `${east < 0 ? '-' : '+'}${pad2(Math.floor(abs / 60))}${pad2(abs % 60)}`;
}

function perSecond(build: (d: Date) => string): (ms: number) => string {
  let second = NaN;
  let text = '';
  return (ms) => {
    const s = Math.floor(ms / 1000);
    if (s !== second) {
      second = s;
      text = build(new Date(s * 1000));
    }
    return text;
  };
}

/** The access log's %(t)s, Apache's Common Log Format date: "[10/Oct/2000:13:55:36 -0700]". */
export const clfTimestamp = perSecond(
  (d) =>
    `[${pad2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ${utcOffset(d)}]`,
);

/** The error log's prefix date, Gunicorn's datefmt "[%Y-%m-%d %H:%M:%S %z]". */
export const errorLogTimestamp = perSecond(
  (d) =>
    `[${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ${utcOffset(d)}]`,
);

/** The JSON access log's UTC time up to the second, "2026-01-02T03:04:05" (milliseconds are added per line). */
export const isoSecond = perSecond((d) => d.toISOString().slice(0, 19));
