#!/usr/bin/env node
// A TUF client built on tuf-js, an implementation independent of ours: interoperability tests
// use it to check that a repository published by ota-publish verifies with another client.
//
//   node tufjs-client.mjs --metadata-url URL --targets-url URL --root FILE
//        --metadata-dir DIR --target-dir DIR --target PATH [--out FILE] [--print-custom]
//
// Refreshes the metadata (TUF client workflow), looks up PATH, downloads and verifies it.
// --root is the trusted root, copied to DIR/root.json when DIR holds no trusted root yet (as a
// device's first start would). The file lands at --out, or in --target-dir under tuf-js's
// default name (the target path URL-encoded). --print-custom prints the target's custom
// metadata as canonical JSON on stdout ({} when it has none). Exit status 0 on success, 1 with
// the error on stderr, 2 for a usage error.
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';

import { Updater } from 'tuf-js';

import { canonical } from './canonical.mjs';

const USAGE =
    'usage: tufjs-client.mjs --metadata-url URL --targets-url URL --root FILE ' +
    '--metadata-dir DIR --target-dir DIR --target PATH [--out FILE] [--print-custom]';

function usage(msg) {
    process.stderr.write(`tufjs-client: ${msg}\n${USAGE}\n`);
    process.exit(2);
}

function parseArgs(argv) {
    const valued = {
        '--metadata-url': 'metadataUrl',
        '--targets-url': 'targetsUrl',
        '--root': 'root',
        '--metadata-dir': 'metadataDir',
        '--target-dir': 'targetDir',
        '--target': 'target',
        '--out': 'out',
    };
    const opts = { printCustom: false };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--print-custom') {
            opts.printCustom = true;
        } else if (a in valued) {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            opts[valued[a]] = argv[++i];
        } else {
            usage(`unknown argument '${a}'`);
        }
    }
    for (const [flag, key] of Object.entries(valued))
        if (flag !== '--out' && opts[key] === undefined) usage(`missing ${flag}`);
    return opts;
}

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    fs.mkdirSync(opts.metadataDir, { recursive: true });
    fs.mkdirSync(opts.targetDir, { recursive: true });
    const trusted = path.join(opts.metadataDir, 'root.json');
    if (!fs.existsSync(trusted)) fs.copyFileSync(opts.root, trusted);

    const updater = new Updater({
        metadataBaseUrl: opts.metadataUrl,
        targetBaseUrl: opts.targetsUrl,
        metadataDir: opts.metadataDir,
        targetDir: opts.targetDir,
        // Fail fast: a test server on 127.0.0.1 either answers or is broken.
        config: { fetchRetry: 0, fetchTimeout: 30000 },
    });
    await updater.refresh();
    const info = await updater.getTargetInfo(opts.target);
    if (info === undefined) throw new Error(`target '${opts.target}' is not in the repository`);
    const file = await updater.downloadTarget(info, opts.out);
    process.stderr.write(`tufjs-client: verified '${opts.target}' -> ${file}\n`);
    if (opts.printCustom) process.stdout.write(canonical(info.custom ?? null) + '\n');
}

main().then(
    () => process.exit(0),
    (err) => {
        const name = err && err.name ? `${err.name}: ` : '';
        process.stderr.write(`tufjs-client: ${name}${err && err.message ? err.message : err}\n`);
        process.exit(1);
    },
);
