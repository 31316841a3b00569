// Translate the GraphQL-protocol requests that prisma-client-py 0.15 sends into Prisma's JSON
// protocol (the only protocol the wasm query engine accepts), and translate responses back.
const ACTION_RE = /^(findUnique|findFirst|findMany|createOne|createMany|updateOne|updateMany|deleteOne|deleteMany|upsertOne|aggregate|groupBy)(.+?)(OrThrow)?$/;

function tokenize(src) {
  const toks = [];
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i];
    if (c === ' ' || c === '\n' || c === '\t' || c === '\r' || c === ',') { i++; continue; }
    if ('{}()[]:'.includes(c)) { toks.push({ t: c }); i++; continue; }
    if (c === '"') {
      let j = i + 1;
      while (j < n) {
        if (src[j] === '\\') { j += 2; continue; }
        if (src[j] === '"') break;
        j++;
      }
      toks.push({ t: 'str', v: JSON.parse(src.slice(i, j + 1)) });
      i = j + 1;
      continue;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(src.slice(i, i + 64));
      toks.push({ t: 'num', v: m[0] });
      i += m[0].length;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i, i + 256));
    if (!m) throw new Error(`gql2json: unexpected character ${JSON.stringify(c)} at ${i}`);
    toks.push({ t: 'name', v: m[0] });
    i += m[0].length;
  }
  return toks;
}

class Parser {
  constructor(toks) { this.toks = toks; this.p = 0; }
  peek() { return this.toks[this.p]; }
  next() { return this.toks[this.p++]; }
  expect(t) { const k = this.next(); if (!k || k.t !== t) throw new Error(`gql2json: expected ${t} got ${k && k.t}`); return k; }
  value() {
    const k = this.next();
    switch (k.t) {
      case 'str': return k.v;
      case 'num': {
        // keep integers outside the safe range as strings (BigInt columns accept strings)
        if (/^-?\d+$/.test(k.v) && !Number.isSafeInteger(Number(k.v))) return k.v;
        return Number(k.v);
      }
      case 'name':
        if (k.v === 'true') return true;
        if (k.v === 'false') return false;
        if (k.v === 'null') return null;
        return k.v; // bare enum identifier
      case '{': {
        const o = {};
        while (this.peek().t !== '}') { const key = this.expect('name').v; this.expect(':'); o[key] = this.value(); }
        this.next();
        return o;
      }
      case '[': {
        const a = [];
        while (this.peek().t !== ']') a.push(this.value());
        this.next();
        return a;
      }
      default: throw new Error(`gql2json: unexpected token ${k.t}`);
    }
  }
  args() {
    const o = {};
    this.expect('(');
    while (this.peek().t !== ')') { const key = this.expect('name').v; this.expect(':'); o[key] = this.value(); }
    this.next();
    return o;
  }
  selection() {
    const sel = {};
    this.expect('{');
    while (this.peek().t !== '}') {
      const name = this.expect('name').v;
      let args = null;
      let sub = null;
      if (this.peek() && this.peek().t === '(') args = this.args();
      if (this.peek() && this.peek().t === '{') sub = this.selection();
      sel[name] = { args, sub };
    }
    this.next();
    return sel;
  }
  document() {
    this.expect('name'); // query | mutation
    this.expect('{');
    const alias = this.expect('name').v;
    let field = alias;
    if (this.peek().t === ':') { this.next(); field = this.expect('name').v; }
    let args = {};
    let selection = null;
    if (this.peek().t === '(') args = this.args();
    if (this.peek().t === '{') selection = this.selection();
    this.expect('}');
    return { alias, field, args, selection };
  }
}

// ---- type-directed value tagging, driven by the DMMF of the schema ----
// The GraphQL protocol let the engine coerce strings by the schema type (a Json field given
// "{}" stored the object {}); the JSON protocol stores a plain string as a JSON *string*, so Json,
// DateTime, Decimal, BigInt and Bytes inputs that arrive as strings are tagged with $type here.
let IDX = null;
export function setDmmf(dmmf) {
  const inputs = new Map();
  for (const t of dmmf.schema.inputObjectTypes.prisma || []) inputs.set(t.name, new Map(t.fields.map((f) => [f.name, f.inputTypes])));
  const outputs = new Map();
  for (const ns of ['prisma', 'model']) {
    for (const t of dmmf.schema.outputObjectTypes[ns] || []) outputs.set(t.name, new Map(t.fields.map((f) => [f.name, f])));
  }
  IDX = { inputs, outputs };
}
const TAGGABLE = ['Json', 'DateTime', 'Decimal', 'BigInt', 'Bytes'];
function convertValue(v, cands) {
  if (v === null || v === undefined || !cands || !IDX) return v;
  if (Array.isArray(v)) {
    const listC = cands.filter((c) => c.isList);
    const use = (listC.length ? listC : cands).map((c) => ({ ...c, isList: false }));
    return v.map((x) => convertValue(x, use));
  }
  if (typeof v === 'string') {
    const scalars = new Set(cands.filter((c) => c.location === 'scalar').map((c) => c.type));
    if (scalars.has('String')) return v;
    for (const t of TAGGABLE) if (scalars.has(t)) return { $type: t, value: v };
    return v;
  }
  if (typeof v === 'object') {
    const types = cands.filter((c) => c.location === 'inputObjectTypes').map((c) => IDX.inputs.get(c.type)).filter(Boolean);
    if (!types.length) return v;
    const keys = Object.keys(v);
    const best = types.find((t) => keys.every((k) => t.has(k)));
    const out = {};
    for (const k of keys) {
      const t = best || types.find((tt) => tt.has(k));
      out[k] = convertValue(v[k], t ? t.get(k) : null);
    }
    return out;
  }
  return v;
}
function convertArgs(args, fieldDef) {
  if (!args) return {};
  if (!fieldDef || !IDX) return args;
  const byName = new Map(fieldDef.args.map((a) => [a.name, a.inputTypes]));
  const out = {};
  for (const [k, v] of Object.entries(args)) out[k] = convertValue(v, byName.get(k));
  return out;
}
function convertSelection(sel, outTypeName) {
  const typeDef = IDX && outTypeName ? IDX.outputs.get(outTypeName) : null;
  const out = {};
  for (const [name, node] of Object.entries(sel)) {
    if (node.args === null && node.sub === null) { out[name] = true; continue; }
    const fdef = typeDef ? typeDef.get(name) : null;
    const sub = node.sub ? convertSelection(node.sub, fdef ? fdef.outputType.type : null) : { $scalars: true };
    out[name] = { arguments: convertArgs(node.args, fdef), selection: sub };
  }
  return out;
}

function toJsonQuery(gql) {
  const doc = new Parser(tokenize(gql)).document();
  const { field } = doc;
  const opName = /^(queryRaw|executeRaw|create|update|upsert|delete)/.test(field) ? 'Mutation' : 'Query';
  const rootDef = IDX ? (IDX.outputs.get(opName).get(field) || IDX.outputs.get(opName === 'Query' ? 'Mutation' : 'Query').get(field)) : null;
  // raw queries keep their arguments verbatim: `parameters` is a JSON-encoded string in both protocols
  const args = (field === 'queryRaw' || field === 'executeRaw') ? (doc.args || {}) : convertArgs(doc.args, rootDef);
  let modelName;
  let action;
  if (field === 'queryRaw' || field === 'executeRaw') {
    action = field;
  } else {
    const m = ACTION_RE.exec(field);
    if (!m) throw new Error(`gql2json: unsupported operation ${field}`);
    action = m[1] + (m[3] ? 'OrThrow' : '');
    modelName = m[2];
  }
  const selection = doc.selection ? convertSelection(doc.selection, rootDef ? rootDef.outputType.type : null) : { $scalars: true };
  const q = { action, query: { arguments: args, selection } };
  if (modelName) q.modelName = modelName;
  return { alias: doc.alias, query: q };
}

// GraphQL-protocol body {"query": "...", "variables": {}, "operation_name": "..."} or
// batch {"batch": [{"query": "..."}], "transaction": true}
export function translateRequest(bodyStr) {
  const body = JSON.parse(bodyStr);
  if (Array.isArray(body.batch)) {
    const batch = body.batch.map((b) => toJsonQuery(b.query).query);
    const out = { batch };
    if (body.transaction) out.transaction = typeof body.transaction === 'object' ? body.transaction : {};
    return { isBatch: true, rawFlags: batch.map((q) => q.action === 'queryRaw'), json: JSON.stringify(out) };
  }
  const { alias, query } = toJsonQuery(body.query);
  return { isBatch: false, alias, isRaw: query.action === 'queryRaw', json: JSON.stringify(query) };
}

// JSON protocol tags typed values ({"$type":"DateTime","value":...}); the GraphQL protocol
// returned them as plain values (Json fields as JSON-encoded strings).
function untag(v) {
  if (Array.isArray(v)) return v.map(untag);
  if (v && typeof v === 'object') {
    if (typeof v.$type === 'string' && 'value' in v && Object.keys(v).length === 2) {
      switch (v.$type) {
        case 'BigInt': {
          const num = Number(v.value);
          return Number.isSafeInteger(num) ? num : v.value;
        }
        case 'Json': return typeof v.value === 'string' ? v.value : JSON.stringify(v.value);
        default: return v.value; // DateTime, Decimal, Bytes -> string
      }
    }
    const o = {};
    for (const [k, val] of Object.entries(v)) o[k] = untag(val);
    return o;
  }
  return v;
}

// prisma-client-py <= 0.12 (Prisma 5.4-era) expects raw results as a list of
// {column: {prisma__type, prisma__value}} objects instead of {columns, types, rows}.
let LEGACY_RAW = false;
export function setLegacyRaw(v) { LEGACY_RAW = !!v; }
function legacyRaw(r) {
  if (!r || !Array.isArray(r.columns) || !Array.isArray(r.rows)) return r;
  return r.rows.map((row) => {
    const o = {};
    r.columns.forEach((c, i) => {
      const t = r.types[i];
      const v = row[i];
      if (v === null || v === undefined) o[c] = { prisma__type: 'null', prisma__value: null };
      else if (t.endsWith('-array') && Array.isArray(v)) {
        const et = t.slice(0, -6);
        o[c] = { prisma__type: 'array', prisma__value: v.map((x) => ({ prisma__type: x === null ? 'null' : et, prisma__value: x })) };
      } else o[c] = { prisma__type: t, prisma__value: v };
    });
    return o;
  });
}

function fixSingle(resp, alias, isRaw) {
  if (resp && resp.data && typeof resp.data === 'object') {
    const keys = Object.keys(resp.data);
    let val = keys.length === 1 ? resp.data[keys[0]] : resp.data;
    if (isRaw && LEGACY_RAW) val = legacyRaw(val);
    return { ...resp, data: { [alias || 'result']: isRaw ? val : untag(val) } };
  }
  return resp;
}

export function translateResponse(respStr, tr) {
  const resp = JSON.parse(respStr);
  if (tr.isBatch && Array.isArray(resp.batchResult)) {
    return JSON.stringify({ ...resp, batchResult: resp.batchResult.map((r, i) => fixSingle(r, 'result', tr.rawFlags[i])) });
  }
  return JSON.stringify(fixSingle(resp, tr.alias, tr.isRaw));
}
