// The settings reference as a Markdown table, derived from the schema; the README
// carries it between markers and a test keeps the two identical.
import { envName, formatSetting, schema, settingNames } from './schema.js';

const cell = (text: string) => text.replace(/\|/g, '\\|');

export function settingsTableMarkdown(): string {
  const rows = settingNames.map((name) => {
    const spec = schema[name];
    const shown = formatSetting(name, spec.default);
    const ini = spec.cliOnly ? '—' : `\`${name}\``;
    const flags = spec.flags
      .replace(/ <[^>]+>/, '')
      .split(', ')
      .map((f) => `\`${f}\``)
      .join(' ');
    return `| ${ini} | ${flags} | \`${envName(name)}\` | ${shown === '' ? '(unset)' : `\`${cell(shown)}\``} | ${cell(spec.kind.form)} | ${cell(spec.help)} |`;
  });
  return ['| ini key | command line | environment | default | form | meaning |', '|---|---|---|---|---|---|', ...rows].join('\n');
}
