// Canonical JSON as TUF's reference implementations write it: object keys sorted by their
// UTF-8 bytes, no whitespace, only '"' and '\' escaped in strings, integers only. Used for key
// ids and for output that tests compare byte for byte (as formats/ota/cjson.h).
function str(s) {
    return '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

export function canonical(v) {
    if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
    if (v === null || typeof v === 'boolean') return String(v);
    if (typeof v === 'string') return str(v);
    if (typeof v === 'number') {
        if (!Number.isSafeInteger(v)) throw new Error(`canonical JSON: ${v} is not an integer`);
        return String(v);
    }
    if (typeof v === 'object') {
        const keys = Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        return '{' + keys.map((k) => str(k) + ':' + canonical(v[k])).join(',') + '}';
    }
    throw new Error(`canonical JSON: cannot encode a ${typeof v}`);
}
