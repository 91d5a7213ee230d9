// The Node.js tsgunicorn runs on: its workers start with --disable-sigusr1
// (Node 22.14+) and .ts apps need type stripping (22.18+). A machine's older
// Node under npx would otherwise fail every worker with "bad option".
const REQUIRED_NODE = 'Node.js 24 (or 22.18+)';

/** Why this Node.js cannot run tsgunicorn, or null when it can. */
export function unsupportedRuntime(
  version: string = process.version,
  flags: ReadonlySet<string> = process.allowedNodeEnvironmentFlags,
  features: { typescript?: unknown } = process.features,
): string | null {
  if (flags.has('--disable-sigusr1') && features.typescript !== undefined) return null;
  return `tsgunicorn needs ${REQUIRED_NODE}; this is Node.js ${version}: run it with Node 24 (npx uses the node on your PATH), or install the Debian package, which brings its own`;
}
