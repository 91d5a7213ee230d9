// Rewrites the settings table in README.md from the settings schema (npm run docs).
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { settingsTableMarkdown } from '../dist/js/settings/docs.js';

const readme = path.resolve(import.meta.dirname, '../README.md');
const text = readFileSync(readme, 'utf8');
const start = '<!-- settings:start -->';
const end = '<!-- settings:end -->';
const from = text.indexOf(start);
const to = text.indexOf(end);
if (from === -1 || to === -1) throw new Error(`README.md lacks the ${start} … ${end} markers`);
writeFileSync(readme, `${text.slice(0, from + start.length)}\n${settingsTableMarkdown()}\n${text.slice(to)}`);
