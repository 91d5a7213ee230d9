// Types of debian-deps.mjs, for the TypeScript that imports it (test/global-setup.ts).
export declare const BUILD_DEPS: string[];
export declare function ensurePackages(packages: string[], why: string): void;
/** The directory holding promtool, or null when it cannot be had. */
export declare function ensurePromtool(): string | null;
export declare function ensureAddons(): void;
