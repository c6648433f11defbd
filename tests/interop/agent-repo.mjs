#!/usr/bin/env node
// Publishes a static TUF repository with @tufjs/models alone (no ota code), one step at a time,
// so the agent's tests can update a device from a repository written by another
// implementation. Keys come from fixed seeds, so bundles can be signed with the same targets
// key by a test tool (the targets seed is printed by --print-targets-seed).
//
//   node agent-repo.mjs --out DIR [--target PATH=FILE [--custom JSON]]... [--remove PATH]...
//   node agent-repo.mjs --print-targets-seed
//
// The first call writes metadata/1.root.json (and root.json); every call publishes the next
// version of targets, snapshot and timestamp (consistent snapshots, spec_version 1.0.31,
// ed25519, threshold 1), carrying over the targets already published: --target adds or
// replaces a target (its file is copied to targets/<dir>/<sha256>.<name>), --custom sets the
// custom member of the --target before it, --remove drops a target from the metadata.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';

import { Key, Metadata, MetaFile, Root, Signature, Snapshot, Targets, Timestamp } from
    '@tufjs/models';

import { canonical } from './canonical.mjs';

const SPEC_VERSION = '1.0.31';
const SEEDS = { root: 0x11, targets: 0x22, snapshot: 0x33, timestamp: 0x44 };
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

function usage(msg) {
    process.stderr.write(`agent-repo: ${msg}\n` +
        'usage: agent-repo.mjs --out DIR [--target PATH=FILE [--custom JSON]]... [--remove PATH]...\n');
    process.exit(2);
}

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const tufTime = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

function seededKey(byte) {
    const seed = Buffer.alloc(32, byte);
    const privateKey = crypto.createPrivateKey({
        key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8',
    });
    const pub = Buffer.from(crypto.createPublicKey(privateKey).export({ format: 'jwk' }).x,
        'base64url').toString('hex');
    const obj = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: pub } };
    const keyid = sha256(canonical(obj));
    const key = new Key({ keyID: keyid, keyType: 'ed25519', scheme: 'ed25519',
        keyVal: { public: pub } });
    return { keyid, privateKey, key, seed };
}

function sign(md, k) {
    md.sign((data) => new Signature({ keyID: k.keyid,
        sig: crypto.sign(null, data, k.privateKey).toString('hex') }));
    return md;
}

const serialize = (md) => Buffer.from(JSON.stringify(md.toJSON(), null, 1) + '\n');
const metaFile = (version, bytes) =>
    new MetaFile({ version, length: bytes.length, hashes: { sha256: sha256(bytes) } });

function parseArgs(argv) {
    const o = { out: null, targets: [], remove: [], printSeed: false };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
        if (a === '--out') o.out = val();
        else if (a === '--print-targets-seed') o.printSeed = true;
        else if (a === '--remove') o.remove.push(val());
        else if (a === '--target') {
            const v = val();
            const eq = v.indexOf('=');
            if (eq <= 0) usage(`--target wants PATH=FILE, not '${v}'`);
            o.targets.push({ path: v.slice(0, eq), file: v.slice(eq + 1), custom: undefined });
        } else if (a === '--custom') {
            const t = o.targets[o.targets.length - 1];
            if (t === undefined || t.custom !== undefined) usage('--custom must follow a --target');
            try { t.custom = JSON.parse(val()); } catch (e) { usage(`--custom: ${e.message}`); }
        } else usage(`unknown argument '${a}'`);
    }
    if (!o.printSeed && o.out === null) usage('missing --out');
    return o;
}

function main() {
    const o = parseArgs(process.argv.slice(2));
    const keys = {};
    for (const [role, b] of Object.entries(SEEDS)) keys[role] = seededKey(b);
    if (o.printSeed) {
        process.stdout.write(keys.targets.seed.toString('hex') + '\n');
        return;
    }
    const meta = path.join(o.out, 'metadata');
    fs.mkdirSync(meta, { recursive: true });
    const expires = tufTime(new Date(Date.now() + 365 * 86400 * 1000));
    const common = (version) => ({ version, specVersion: SPEC_VERSION, expires });

    if (!fs.existsSync(path.join(meta, 'root.json'))) {
        const root = new Root({ ...common(1), consistentSnapshot: true });
        for (const role of Object.keys(SEEDS)) root.addKey(keys[role].key, role);
        const bytes = serialize(sign(new Metadata(root), keys.root));
        fs.writeFileSync(path.join(meta, '1.root.json'), bytes);
        fs.writeFileSync(path.join(meta, 'root.json'), bytes);
    }

    // What is published now: timestamp -> snapshot -> targets.
    let tsVersion = 0, snapVersion = 0, tgtVersion = 0, existing = {};
    const tsPath = path.join(meta, 'timestamp.json');
    if (fs.existsSync(tsPath)) {
        const ts = JSON.parse(fs.readFileSync(tsPath)).signed;
        tsVersion = ts.version;
        snapVersion = ts.meta['snapshot.json'].version;
        const snap = JSON.parse(fs.readFileSync(path.join(meta, `${snapVersion}.snapshot.json`)))
            .signed;
        tgtVersion = snap.meta['targets.json'].version;
        existing = JSON.parse(fs.readFileSync(path.join(meta, `${tgtVersion}.targets.json`)))
            .signed.targets;
    }
    const entries = {};
    for (const [p, t] of Object.entries(existing)) entries[p] = t;
    for (const p of o.remove) {
        if (!(p in entries)) usage(`no target '${p}' to remove`);
        delete entries[p];
    }
    for (const t of o.targets) {
        const data = fs.readFileSync(t.file);
        const hash = sha256(data);
        const { dir, base } = path.posix.parse(t.path);
        fs.mkdirSync(path.join(o.out, 'targets', dir), { recursive: true });
        fs.writeFileSync(path.join(o.out, 'targets', dir, `${hash}.${base}`), data);
        const e = { length: data.length, hashes: { sha256: hash } };
        if (t.custom !== undefined) e.custom = t.custom;
        entries[t.path] = e;
    }
    const tjson = { _type: 'targets', spec_version: SPEC_VERSION, version: tgtVersion + 1,
        expires, targets: entries };
    const tbytes = serialize(sign(new Metadata(Targets.fromJSON(tjson)), keys.targets));
    fs.writeFileSync(path.join(meta, `${tgtVersion + 1}.targets.json`), tbytes);
    const snapshot = new Snapshot({ ...common(snapVersion + 1),
        meta: { 'targets.json': metaFile(tgtVersion + 1, tbytes) } });
    const sbytes = serialize(sign(new Metadata(snapshot), keys.snapshot));
    fs.writeFileSync(path.join(meta, `${snapVersion + 1}.snapshot.json`), sbytes);
    const timestamp = new Timestamp({ ...common(tsVersion + 1),
        snapshotMeta: metaFile(snapVersion + 1, sbytes) });
    // Written last and atomically: a client never sees a timestamp without its snapshot.
    fs.writeFileSync(tsPath + '.tmp', serialize(sign(new Metadata(timestamp), keys.timestamp)));
    fs.renameSync(tsPath + '.tmp', tsPath);
}

try {
    main();
} catch (err) {
    process.stderr.write(`agent-repo: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
}
