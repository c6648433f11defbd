#!/usr/bin/env node
// Builds a small static TUF repository with @tufjs/models alone (no ota code), laid out as
// ota-publish lays out REPO/public (consistent snapshots, hash-prefixed target file names,
// versioned metadata names), so that tests can check our TUF client against a
// repository written by another implementation.
//
//   node make-repo.mjs --out DIR --target PATH=FILE [--custom JSON] [--target ...]
//        [--delegate NAME:PATTERN ...] [--expired] [--keys-out KEYDIR]
//
// Writes DIR/metadata/{1.root.json,root.json,timestamp.json,1.snapshot.json,1.targets.json}
// (plus 1.NAME.json per delegated role) and DIR/targets/<dir>/<sha256>.<name> for each target
// PATH = <dir>/<name>. Every role has one fresh ed25519 key (threshold 1), spec_version
// 1.0.31, version 1, consistent_snapshot true, expiry one year from now.
//
//   --custom JSON          the target's "custom" member; it applies to the nearest --target
//                          before it, or to the next one when no --target came before
//   --delegate NAME:PATTERN  a delegated role NAME (own key, threshold 1, not terminating)
//                          trusted by the top-level targets role for paths matching PATTERN;
//                          a target goes into the first delegated role whose pattern matches
//                          it, else into the top-level targets role. Several --delegate give
//                          peer delegations.
//   --expired              timestamp.json expired a day ago (everything else stays valid)
//   --keys-out KEYDIR      also write each role's private key (KEYDIR/<role>.pem, PKCS#8) and
//                          KEYDIR/keys.json ({role: {keyid, public}}) for tests that re-sign
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';

import {
    Key,
    Metadata,
    MetaFile,
    Root,
    Signature,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
} from '@tufjs/models';

import { canonical } from './canonical.mjs';

const SPEC_VERSION = '1.0.31';
const TOP_ROLES = ['root', 'targets', 'snapshot', 'timestamp'];
const USAGE =
    'usage: make-repo.mjs --out DIR --target PATH=FILE [--custom JSON] [--target ...] ' +
    '[--delegate NAME:PATTERN ...] [--expired] [--keys-out KEYDIR]';

function usage(msg) {
    process.stderr.write(`make-repo: ${msg}\n${USAGE}\n`);
    process.exit(2);
}

function parseArgs(argv) {
    const opts = { out: null, targets: [], delegates: [], expired: false, keysOut: null };
    let pendingCustom;
    const value = (i) => {
        if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
        return argv[i + 1];
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--out') {
            opts.out = value(i++);
        } else if (a === '--keys-out') {
            opts.keysOut = value(i++);
        } else if (a === '--expired') {
            opts.expired = true;
        } else if (a === '--target') {
            const v = value(i++);
            const eq = v.indexOf('=');
            if (eq <= 0 || eq === v.length - 1) usage(`--target wants PATH=FILE, not '${v}'`);
            const t = { path: v.slice(0, eq), file: v.slice(eq + 1), custom: undefined };
            const parts = t.path.split('/');
            if (parts.some((c) => c === '' || c === '.' || c === '..'))
                usage(`bad target path '${t.path}'`);
            if (pendingCustom !== undefined) {
                t.custom = pendingCustom;
                pendingCustom = undefined;
            }
            opts.targets.push(t);
        } else if (a === '--custom') {
            let custom;
            try {
                custom = JSON.parse(value(i++));
            } catch (e) {
                usage(`--custom is not JSON: ${e.message}`);
            }
            const last = opts.targets[opts.targets.length - 1];
            if (last !== undefined && last.custom === undefined) last.custom = custom;
            else if (pendingCustom === undefined) pendingCustom = custom;
            else usage('two --custom for one --target');
        } else if (a === '--delegate') {
            const v = value(i++);
            const colon = v.indexOf(':');
            const name = v.slice(0, colon);
            if (colon <= 0 || colon === v.length - 1)
                usage(`--delegate wants NAME:PATTERN, not '${v}'`);
            if (!/^[A-Za-z0-9_-]+$/.test(name) || TOP_ROLES.includes(name))
                usage(`bad delegated role name '${name}'`);
            if (opts.delegates.some((d) => d.name === name))
                usage(`role '${name}' delegated twice`);
            opts.delegates.push({ name, pattern: v.slice(colon + 1) });
        } else {
            usage(`unknown argument '${a}'`);
        }
    }
    if (opts.out === null) usage('missing --out');
    if (opts.targets.length === 0) usage('missing --target');
    if (pendingCustom !== undefined) usage('--custom without a --target');
    return opts;
}

// TUF's UTC time form, without milliseconds.
function tufTime(date) {
    return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function sha256(buf) {
    return crypto.createHash('sha256').update(buf).digest('hex');
}

function newKey() {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
    const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url').toString('hex');
    const obj = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: pub } };
    const keyid = sha256(canonical(obj));
    return {
        keyid,
        pub,
        privateKey,
        key: new Key({
            keyID: keyid,
            keyType: 'ed25519',
            scheme: 'ed25519',
            keyVal: { public: pub },
        }),
    };
}

function sign(md, k) {
    md.sign((data) => {
        const sig = crypto.sign(null, data, k.privateKey).toString('hex');
        return new Signature({ keyID: k.keyid, sig });
    });
    return md;
}

function metaFile(version, bytes) {
    return new MetaFile({ version, length: bytes.length, hashes: { sha256: sha256(bytes) } });
}

function serialize(md) {
    return Buffer.from(JSON.stringify(md.toJSON(), null, 1) + '\n');
}

// Shell-style pattern match as TUF delegations use it ('*' does not cross '/').
function matches(pattern, p) {
    const re = pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]');
    return pattern.split('/').length === p.split('/').length && new RegExp(`^${re}$`).test(p);
}

function main() {
    const opts = parseArgs(process.argv.slice(2));
    const metaDir = path.join(opts.out, 'metadata');
    const targetsDir = path.join(opts.out, 'targets');
    if (fs.existsSync(path.join(metaDir, 'root.json')))
        usage(`'${metaDir}' already holds a repository`);
    fs.mkdirSync(metaDir, { recursive: true });
    fs.mkdirSync(targetsDir, { recursive: true });

    const now = new Date();
    const inAYear = tufTime(new Date(now.getTime() + 365 * 86400 * 1000));
    const dayAgo = tufTime(new Date(now.getTime() - 86400 * 1000));
    const common = (expires) => ({ version: 1, specVersion: SPEC_VERSION, expires });
    const keys = { root: newKey(), targets: newKey(), snapshot: newKey(), timestamp: newKey() };
    for (const d of opts.delegates) keys[d.name] = newKey();

    // Targets: publish each file under its hash-prefixed name, and place its entry.
    const entries = { targets: {} };
    for (const d of opts.delegates) entries[d.name] = {};
    for (const t of opts.targets) {
        const data = fs.readFileSync(t.file);
        const hash = sha256(data);
        const { dir, base } = path.posix.parse(t.path);
        fs.mkdirSync(path.join(targetsDir, dir), { recursive: true });
        fs.writeFileSync(path.join(targetsDir, dir, `${hash}.${base}`), data);
        const role = opts.delegates.find((d) => matches(d.pattern, t.path))?.name ?? 'targets';
        entries[role][t.path] = new TargetFile({
            length: data.length,
            path: t.path,
            hashes: { sha256: hash },
            unrecognizedFields: t.custom === undefined ? {} : { custom: t.custom },
        });
    }

    const files = {}; // metadata file name -> bytes
    const snapshotMeta = {};
    const topJSON = {
        _type: 'targets',
        spec_version: SPEC_VERSION,
        version: 1,
        expires: inAYear,
        targets: {},
    };
    for (const [p, tf] of Object.entries(entries.targets)) topJSON.targets[p] = tf.toJSON();
    if (opts.delegates.length > 0) {
        // Delegations are built from JSON: @tufjs/models does not export their classes.
        topJSON.delegations = { keys: {}, roles: [] };
        for (const d of opts.delegates) {
            const k = keys[d.name];
            topJSON.delegations.keys[k.keyid] = k.key.toJSON();
            topJSON.delegations.roles.push({
                name: d.name,
                keyids: [k.keyid],
                threshold: 1,
                terminating: false,
                paths: [d.pattern],
            });
            const signed = new Targets({ ...common(inAYear), targets: entries[d.name] });
            const delegated = sign(new Metadata(signed), k);
            files[`1.${d.name}.json`] = serialize(delegated);
        }
    }
    const top = sign(new Metadata(Targets.fromJSON(topJSON)), keys.targets);
    files['1.targets.json'] = serialize(top);
    for (const name of ['targets', ...opts.delegates.map((d) => d.name)]) {
        const bytes = files[`1.${name}.json`];
        snapshotMeta[`${name}.json`] = metaFile(1, bytes);
    }

    const snapshot = sign(
        new Metadata(new Snapshot({ ...common(inAYear), meta: snapshotMeta })),
        keys.snapshot,
    );
    files['1.snapshot.json'] = serialize(snapshot);
    const snap = files['1.snapshot.json'];
    const timestamp = new Timestamp({
        ...common(opts.expired ? dayAgo : inAYear),
        snapshotMeta: metaFile(1, snap),
    });
    files['timestamp.json'] = serialize(sign(new Metadata(timestamp), keys.timestamp));

    const root = new Root({ ...common(inAYear), consistentSnapshot: true });
    for (const role of TOP_ROLES) root.addKey(keys[role].key, role);
    files['1.root.json'] = serialize(sign(new Metadata(root), keys.root));
    files['root.json'] = files['1.root.json'];

    for (const [name, bytes] of Object.entries(files))
        fs.writeFileSync(path.join(metaDir, name), bytes);

    if (opts.keysOut !== null) {
        fs.mkdirSync(opts.keysOut, { recursive: true, mode: 0o700 });
        const index = {};
        for (const [role, k] of Object.entries(keys)) {
            const pem = k.privateKey.export({ format: 'pem', type: 'pkcs8' });
            fs.writeFileSync(path.join(opts.keysOut, `${role}.pem`), pem, { mode: 0o600 });
            index[role] = { keyid: k.keyid, public: k.pub };
        }
        const indexText = JSON.stringify(index, null, 1) + '\n';
        fs.writeFileSync(path.join(opts.keysOut, 'keys.json'), indexText);
    }
}

try {
    main();
} catch (err) {
    process.stderr.write(`make-repo: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
}
