// Writes the package's machine-readable copyright file (DEP-5,
// copyright-format 1.0) to stdout: tsgunicorn itself, the bundled Node.js
// runtime (its LICENSE file, which also lists what Node.js bundles), and every
// package in the bundled production node_modules, read from its package.json
// and license file at build time so the list always matches what ships.
//
// Usage: node debian/gen-copyright.mjs STAGED_ROOT RUNTIME_LICENSE
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const [stagedRoot, runtimeLicense] = process.argv.slice(2);
if (!stagedRoot || !runtimeLicense) {
  console.error('usage: gen-copyright.mjs STAGED_ROOT RUNTIME_LICENSE');
  process.exit(2);
}
const libDir = 'usr/lib/tsgunicorn';

const MIT_TEXT = `Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.`;

// Licenses whose full text every Debian/Ubuntu system has in
// /usr/share/common-licenses: refer to it instead of repeating it (Policy 12.5).
const COMMON_LICENSES = {
  'Apache-2.0': 'Apache-2.0',
  'GPL-2.0': 'GPL-2',
  'GPL-3.0': 'GPL-3',
  'LGPL-2.1': 'LGPL-2.1',
  'LGPL-3.0': 'LGPL-3',
  'MPL-2.0': 'MPL-2.0',
};

/** A field value as DEP-5 writes it: continuation lines indented, blank ones as " .". */
const fieldText = (text) =>
  text
    .replace(/\r\n?/g, '\n')
    .trim()
    .split('\n')
    .map((l) => (l.trim() === '' ? ' .' : ` ${l.trimEnd()}`))
    .join('\n');

const paragraph = (fields) =>
  Object.entries(fields)
    .map(([k, v]) => {
      const [first, ...rest] = v.split('\n');
      return [`${k}: ${first.trimStart()}`, ...rest].join('\n');
    })
    .join('\n');

/** Every package directory under a node_modules, nested ones and @scopes included. */
function packagesUnder(modules) {
  if (!existsSync(modules)) return [];
  const found = [];
  for (const entry of readdirSync(modules, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = path.join(modules, entry.name);
    const dirs = entry.name.startsWith('@') ? readdirSync(dir).map((n) => path.join(dir, n)) : [dir];
    for (const d of dirs) {
      if (!existsSync(path.join(d, 'package.json'))) continue;
      found.push(d, ...packagesUnder(path.join(d, 'node_modules')));
    }
  }
  return found;
}

const licenseName = (pkg) => {
  const l = pkg.license ?? pkg.licenses;
  if (typeof l === 'string') return l;
  if (Array.isArray(l)) return l.map((x) => x.type ?? x).join(' or ');
  return l?.type ?? 'UNKNOWN';
};

const authorName = (pkg) => {
  const a = pkg.author;
  return typeof a === 'string' ? a.replace(/\s*\(.*?\)\s*/g, ' ').trim() : a?.name;
};

const decodeEntities = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The "Copyright ..." notices at the head of a license text. */
const copyrightLines = (text) =>
  text
    .split(/\r?\n/)
    .filter((l) => /^\s*copyright\b/i.test(l) && !/copyright (notice|owner|holder)|\[yyyy\]/i.test(l))
    .map((l) => decodeEntities(l.trim().replace(/^copyright\s*(\(c\)|©)?\s*/i, '')));

/**
 * Node.js's LICENSE repeats the terms of the Apache License 2.0 for each
 * component under it; every system has them in common-licenses, so each copy
 * of the terms (from the "Apache License" title to "END OF TERMS AND
 * CONDITIONS") becomes a pointer there. Each component's own notice stays.
 */
const withoutApacheTerms = (text) =>
  text.replace(
    /^[ \t]*Apache License\s*\n\s*Version 2\.0, January 2004[\s\S]*?\n([ \t]*)END OF TERMS AND CONDITIONS[ \t]*$/gm,
    (_, indent) =>
      `${indent}The Apache License, Version 2.0: on Debian and Ubuntu systems its terms\n${indent}are in /usr/share/common-licenses/Apache-2.0.`,
  );

const out = [];
out.push(
  paragraph({
    Format: 'https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    'Upstream-Name': 'tsgunicorn',
    Comment: fieldText(
      'The package bundles its own Node.js runtime and the npm packages it needs at\nrun time, listed below with the licence each one ships.',
    ),
  }),
);
out.push(
  paragraph({
    Files: '*',
    Copyright: 'tsgunicorn contributors',
    License: `MIT\n${fieldText(MIT_TEXT)}`,
  }),
);
out.push(
  paragraph({
    Files: `${libDir}/bin/node`,
    Copyright: fieldText('Node.js contributors. All rights reserved.\nJoyent, Inc. and other Node contributors.'),
    License: `MIT-and-Node.js-bundled\n${fieldText(withoutApacheTerms(readFileSync(runtimeLicense, 'utf8')))}`,
  }),
);

const standalone = new Set();
const modules = path.join(stagedRoot, libDir, 'node_modules');
for (const dir of packagesUnder(modules).sort()) {
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const license = licenseName(pkg);
  const licenseFile = readdirSync(dir).find((n) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(n));
  const licenseText = licenseFile ? decodeEntities(readFileSync(path.join(dir, licenseFile), 'utf8')) : undefined;
  const common = COMMON_LICENSES[license];
  const holders = common ? [] : copyrightLines(licenseText ?? '');
  if (holders.length === 0) holders.push(authorName(pkg) ?? `${pkg.name} authors`);
  let licenseField;
  if (common) {
    standalone.add(license);
    licenseField = license;
  } else if (licenseText) {
    // The license text without its copyright notices, which the Copyright field holds.
    const body = licenseText
      .split(/\r?\n/)
      .filter((l) => !copyrightLines(l).length)
      .join('\n')
      .replace(/\n{3,}/g, '\n\n');
    licenseField = `${license}\n${fieldText(body)}`;
  } else if (license === 'MIT') {
    licenseField = `MIT\n${fieldText(MIT_TEXT)}`;
  } else {
    throw new Error(`${pkg.name}: no license file and no known text for ${license}`);
  }
  out.push(
    paragraph({
      Files: `${path.relative(stagedRoot, dir)}/*`,
      Copyright: fieldText(holders.join('\n')),
      License: licenseField,
      Comment: `npm package ${pkg.name} ${pkg.version}`,
    }),
  );
}
for (const license of [...standalone].sort()) {
  out.push(
    paragraph({
      License: `${license}\n${fieldText(`On Debian and Ubuntu systems, the full text of this licence is in\n/usr/share/common-licenses/${COMMON_LICENSES[license]}.`)}`,
    }),
  );
}
process.stdout.write(out.join('\n\n') + '\n');
