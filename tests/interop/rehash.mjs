#!/usr/bin/env node
// Brings snapshot and timestamp of a repository made by make-repo.mjs back in line with the
// files on disk, after a test changed some metadata: recomputes the length and sha256 of
// every file snapshot.json lists, then of the snapshot, and signs both again with the keys
// make-repo.mjs wrote with --keys-out. A test can thus alter targets metadata and have the
// alteration caught by the targets signature alone, not by a hash in the snapshot.
//
//   node rehash.mjs --repo DIR --keys KEYDIR [--sign NAME ...]
//
//   --sign NAME   first sign metadata/<v>.NAME.json again (targets or a delegated role) with
//                 KEYDIR/NAME.pem, replacing its signatures: the change becomes legitimate
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';

import { Metadata, MetaFile, Signature, Snapshot, Timestamp } from '@tufjs/models';

const USAGE = 'usage: rehash.mjs --repo DIR --keys KEYDIR [--sign NAME ...]';

function usage(msg) {
    process.stderr.write(`rehash: ${msg}\n${USAGE}\n`);
    process.exit(2);
}

function parseArgs(argv) {
    const opts = { repo: null, keys: null, sign: [] };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (!['--repo', '--keys', '--sign'].includes(a)) usage(`unknown argument '${a}'`);
        if (i + 1 >= argv.length) usage(`${a} needs a value`);
        const v = argv[++i];
        if (a === '--sign') opts.sign.push(v);
        else opts[a.slice(2)] = v;
    }
    if (opts.repo === null || opts.keys === null) usage('missing --repo or --keys');
    return opts;
}

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const serialize = (md) => Buffer.from(JSON.stringify(md.toJSON(), null, 1) + '\n');
const metaFile = (version, bytes) =>
    new MetaFile({ version, length: bytes.length, hashes: { sha256: sha256(bytes) } });

function loadKey(keyDir, role) {
    const index = JSON.parse(fs.readFileSync(path.join(keyDir, 'keys.json'), 'utf8'));
    if (!(role in index)) throw new Error(`no key for role '${role}' in ${keyDir}`);
    const pem = fs.readFileSync(path.join(keyDir, `${role}.pem`));
    return { keyid: index[role].keyid, privateKey: crypto.createPrivateKey(pem) };
}

function signWith(md, k) {
    const signer = (data) => {
        const sig = crypto.sign(null, data, k.privateKey).toString('hex');
        return new Signature({ keyID: k.keyid, sig });
    };
    md.sign(signer, false); // replaces the existing signatures
    return md;
}

function main() {
    const opts = parseArgs(process.argv.slice(2));
    const metaDir = path.join(opts.repo, 'metadata');
    const read = (name) => JSON.parse(fs.readFileSync(path.join(metaDir, name), 'utf8'));

    const tsOld = Metadata.fromJSON('timestamp', read('timestamp.json'));
    const snapName = `${tsOld.signed.snapshotMeta.version}.snapshot.json`;
    const snapOld = Metadata.fromJSON('snapshot', read(snapName));

    for (const name of opts.sign) {
        const entry = snapOld.signed.meta[`${name}.json`];
        if (entry === undefined) throw new Error(`snapshot lists no '${name}.json'`);
        const file = `${entry.version}.${name}.json`;
        const md = Metadata.fromJSON('targets', read(file));
        const bytes = serialize(signWith(md, loadKey(opts.keys, name)));
        fs.writeFileSync(path.join(metaDir, file), bytes);
    }

    const meta = {};
    for (const [name, mf] of Object.entries(snapOld.signed.meta)) {
        const bytes = fs.readFileSync(path.join(metaDir, `${mf.version}.${name}`));
        meta[name] = metaFile(mf.version, bytes);
    }
    const s = snapOld.signed;
    const snapshot = new Snapshot({
        version: s.version,
        specVersion: s.specVersion,
        expires: s.expires,
        meta,
    });
    const snapBytes = serialize(signWith(new Metadata(snapshot), loadKey(opts.keys, 'snapshot')));
    fs.writeFileSync(path.join(metaDir, snapName), snapBytes);

    const t = tsOld.signed;
    const timestamp = new Timestamp({
        version: t.version,
        specVersion: t.specVersion,
        expires: t.expires,
        snapshotMeta: metaFile(t.snapshotMeta.version, snapBytes),
    });
    const tsBytes = serialize(signWith(new Metadata(timestamp), loadKey(opts.keys, 'timestamp')));
    fs.writeFileSync(path.join(metaDir, 'timestamp.json'), tsBytes);
}

try {
    main();
} catch (err) {
    process.stderr.write(`rehash: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
}
