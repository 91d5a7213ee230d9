// Types of debian-deps.mjs, for the TypeScript that imports it (test/global-setup.ts).
export declare const BUILD_DEPS: string[];
export declare function ensurePackages(packages: string[], why: string): void;
/** The directory holding promtool and prometheus, or null when both are on PATH. */
export declare function ensurePrometheusTools(): string | null;
export declare function ensureAddons(): void;
