#!/usr/bin/env node
// A static file server for tests that need a transfer to take time: serves DIR on 127.0.0.1 at a
// port chosen by the kernel, GET only, single byte ranges ("bytes=N-" and "bytes=N-M"), at most
// RATE bytes per second per response. Prints the port on stdout when it listens; each request
// is logged on stderr as "GET PATH RANGE STATUS BYTES".
//
//   node slow-http.mjs DIR RATE
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import process from 'node:process';

const [root, rateArg] = process.argv.slice(2);
const rate = Number(rateArg);
if (!root || !(rate > 0)) {
    process.stderr.write('usage: slow-http.mjs DIR RATE\n');
    process.exit(2);
}
const base = fs.realpathSync(root);

const server = http.createServer((req, res) => {
    const log = (status, n) =>
        process.stderr.write(`GET ${req.url} ${req.headers.range ?? '-'} ${status} ${n}\n`);
    const file = path.join(base, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (req.method !== 'GET' || !file.startsWith(base + path.sep) || !fs.existsSync(file) ||
        !fs.statSync(file).isFile()) {
        res.writeHead(req.method === 'GET' ? 404 : 405).end();
        log(404, 0);
        return;
    }
    const size = fs.statSync(file).size;
    let start = 0, end = size - 1, status = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m) {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(Number(m[2]), size - 1);
        if (start >= size) {
            res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
            log(416, 0);
            return;
        }
        status = 206;
    }
    const headers = { 'Content-Length': end - start + 1, 'Accept-Ranges': 'bytes' };
    if (status === 206) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    res.writeHead(status, headers);
    const fd = fs.openSync(file, 'r');
    const chunk = Math.max(1, Math.floor(rate / 20)); // 20 writes a second
    let pos = start, sent = 0, done = false;
    const finish = () => {
        if (done) return;
        done = true;
        clearInterval(tick);
        fs.closeSync(fd);
        log(status, sent);
    };
    const tick = setInterval(() => {
        const n = Math.min(chunk, end + 1 - pos);
        if (n <= 0 || res.destroyed) {
            finish();
            res.end();
            return;
        }
        const buf = Buffer.alloc(n);
        fs.readSync(fd, buf, 0, n, pos);
        pos += n;
        sent += n;
        res.write(buf);
    }, 50);
    res.on('close', finish);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
