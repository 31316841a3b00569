#!/usr/bin/env node
// Offline stand-in for Prisma's native `query-engine` binary (engine hash
// 393aa359c9ad4a4bb28630fb5613f9c281cde053, Prisma 5.17.0), which prisma-client-py (0.11-0.15)
// spawns as an HTTP server. The native binary is only downloadable from binaries.prisma.sh
// (unreachable here), but the SAME engine commit is published on npm as a WebAssembly build
// (@prisma/query-engine-wasm@5.17.0-31.393aa359...), driven through a node-postgres driver
// adapter (@prisma/adapter-pg@5.17.0). This script exposes the binary engine's HTTP API
// (GET /status, POST /, POST /transaction/start, POST /transaction/:id/commit|rollback,
// GET /metrics) on 127.0.0.1:<-p PORT>.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { translateRequest, translateResponse, setDmmf, setLegacyRaw } from './gql2json.mjs';

const ENGINE_HASH = '393aa359c9ad4a4bb28630fb5613f9c281cde053';
const argv = process.argv.slice(2);

if (argv.includes('--version') || argv.includes('-V') || argv[0] === 'version') {
  process.stdout.write(`query-engine ${ENGINE_HASH}\n`);
  process.exit(0);
}

const here = path.dirname(fs.realpathSync(fileURLToPath(import.meta.url)));
const require = createRequire(path.join(here, 'package.json'));

let port = 0;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '-p' || argv[i] === '--port') port = Number(argv[++i]);
}

// --- load the wasm engine (bundler-style package: instantiate by hand) ---
const qeDir = path.join(here, 'node_modules/@prisma/query-engine-wasm/postgresql');
const bg = await import(path.join(qeDir, 'query_engine_bg.js'));
const wasmBytes = fs.readFileSync(path.join(qeDir, 'query_engine_bg.wasm'));
const { instance } = await WebAssembly.instantiate(wasmBytes, { './query_engine_bg.js': bg });
bg.__wbg_set_wasm(instance.exports);
const { QueryEngine } = bg;

const pg = require('pg');
const { PrismaPg } = require('@prisma/adapter-pg');
const { bindAdapter } = require('@prisma/driver-adapter-utils');

// --- datamodel + datasource url ---
let datamodel = fs.readFileSync(process.env.PRISMA_DML_PATH, 'utf8');
let url;
if (process.env.OVERWRITE_DATASOURCES) {
  const ds = JSON.parse(process.env.OVERWRITE_DATASOURCES);
  if (Array.isArray(ds) && ds.length) url = ds[0].url;
}
if (!url) {
  const m = datamodel.match(/url\s*=\s*env\("([^"]+)"\)/);
  url = m ? process.env[m[1]] : undefined;
  if (!url) {
    const m2 = datamodel.match(/url\s*=\s*"([^"]+)"/);
    url = m2 ? m2[1] : undefined;
  }
}
if (!url) {
  console.error('query-engine shim: no datasource url');
  process.exit(1);
}
// the wasm engine only runs with the driverAdapters preview feature
if (!/previewFeatures\s*=\s*\[[^\]]*driverAdapters/.test(datamodel)) {
  if (/previewFeatures\s*=\s*\[/.test(datamodel)) {
    datamodel = datamodel.replace(/previewFeatures\s*=\s*\[/, 'previewFeatures = ["driverAdapters", ');
  } else {
    datamodel = datamodel.replace(/generator\s+(\w+)\s*\{/, (s) => `${s}\n  previewFeatures = ["driverAdapters"]`);
  }
}

// strip Prisma-only url params that node-postgres does not know; use connection_limit as pool size
const u = new URL(url);
const poolMax = Number(u.searchParams.get('connection_limit') || process.env.QE_SHIM_POOL_MAX || 10);
for (const k of ['connection_limit', 'pool_timeout', 'connect_timeout', 'socket_timeout', 'schema', 'pgbouncer', 'statement_cache_size', 'max_idle_connection_lifetime', 'max_connection_lifetime']) {
  u.searchParams.delete(k);
}
// raw-result format: QE_SHIM_RAW_FORMAT=legacy|columns, else detect from the generated client
{
  let fmt = process.env.QE_SHIM_RAW_FORMAT;
  if (!fmt) {
    try {
      const src = fs.readFileSync(path.join(path.dirname(process.env.PRISMA_DML_PATH), '_raw_query.py'), 'utf8');
      fmt = src.includes('prisma__value') ? 'legacy' : 'columns';
    } catch { fmt = 'columns'; }
  }
  setLegacyRaw(fmt === 'legacy');
}
// DMMF (input/output type info) for type-directed translation GraphQL -> JSON protocol
{
  const schemaWasm = require('@prisma/prisma-schema-wasm');
  setDmmf(JSON.parse(schemaWasm.get_dmmf(JSON.stringify({ prismaSchema: datamodel }))));
}
const pool = new pg.Pool({ connectionString: u.toString(), max: poolMax });
const pgAdapter = new PrismaPg(pool);
// adapter-pg 5.17 refuses raw-query columns whose Postgres type it has no mapping for
// (e.g. name[] from ARRAY_AGG(viewname), interval, void); the native engine returned them as
// text. Map such columns to Text / TextArray instead of failing the whole query.
{
  const { ok, err, ColumnTypeEnum } = require('@prisma/driver-adapter-utils');
  const parseArray = require('postgres-array').parse;
  const PgQ = Object.getPrototypeOf(Object.getPrototypeOf(pgAdapter));
  const origQueryRaw = PgQ.queryRaw;
  const typeCache = new Map();
  let arrayOids = null;
  async function loadArrayOids() {
    if (arrayOids) return arrayOids;
    const r = await pool.query("SELECT oid::int AS oid FROM pg_type WHERE typcategory = 'A'");
    arrayOids = new Set(r.rows.map((x) => x.oid));
    return arrayOids;
  }
  async function columnType(oid) {
    if (typeCache.has(oid)) return typeCache.get(oid);
    const probe = await origQueryRaw.call({ performIO: async () => ok({ fields: [{ name: 'c', dataTypeID: oid }], rows: [] }) }, { sql: '', args: [] });
    let t;
    if (probe.ok) t = probe.value.columnTypes[0];
    else t = (await loadArrayOids()).has(oid) ? ColumnTypeEnum.TextArray : ColumnTypeEnum.Text;
    typeCache.set(oid, t);
    return t;
  }
  PgQ.queryRaw = async function queryRaw(query) {
    const res = await this.performIO(query);
    if (!res.ok) return err(res.error);
    const { fields, rows } = res.value;
    const columnTypes = [];
    for (const f of fields) columnTypes.push(await columnType(f.dataTypeID));
    for (let i = 0; i < columnTypes.length; i++) {
      if (columnTypes[i] === ColumnTypeEnum.TextArray) {
        for (const row of rows) if (typeof row[i] === 'string') row[i] = parseArray(row[i]);
      } else if (columnTypes[i] === ColumnTypeEnum.Text) {
        for (const row of rows) if (row[i] !== null && typeof row[i] === 'object' && !Array.isArray(row[i])) row[i] = typeof row[i].toPostgres === 'function' ? row[i].toPostgres() : JSON.stringify(row[i]);
      }
    }
    return ok({ columnNames: fields.map((f) => f.name), columnTypes, rows });
  };
}
const adapter = bindAdapter(pgAdapter);

const logLevel = process.env.QE_SHIM_LOG_LEVEL || 'error';
const engine = new QueryEngine(
  { datamodel, logLevel, logQueries: !!process.env.LOG_QUERIES, configDir: process.cwd(), env: {}, ignoreEnvVarErrors: true, datasourceOverrides: {} },
  (msg) => { if (logLevel !== 'off') process.stderr.write(`query-engine shim: ${msg}\n`); },
  adapter,
);
const TRACE = '{"traceparent":"00-10-10-00"}';
await engine.connect(TRACE);

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, code, body) {
  const s = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

const server = http.createServer(async (req, res) => {
  try {
    const p = req.url.split('?')[0];
    if (req.method === 'GET' && p === '/status') return send(res, 200, { status: 'ok' });
    if (req.method === 'GET' && p === '/metrics') {
      const fmt = (req.url.includes('format=json')) ? 'json' : 'prometheus';
      const out = await engine.metrics(JSON.stringify({ format: fmt, globalLabels: {} }));
      return send(res, 200, out ?? '{}');
    }
    const body = await readBody(req);
    if (req.method === 'POST' && (p === '/' || p === '')) {
      const tx = req.headers['x-transaction-id'];
      const tr = translateRequest(body);
      if (process.env.QE_SHIM_DEBUG) process.stderr.write(`query-engine shim: ${tr.json}\n`);
      const out = await engine.query(tr.json, TRACE, tx || undefined);
      return send(res, 200, translateResponse(out, tr));
    }
    if (req.method === 'POST' && p === '/transaction/start') {
      const out = await engine.startTransaction(body, TRACE);
      const parsed = JSON.parse(out);
      return send(res, parsed.error_code || parsed.errors ? 400 : 200, out);
    }
    let m = p.match(/^\/transaction\/([^/]+)\/(commit|rollback)$/);
    if (req.method === 'POST' && m) {
      const out = m[2] === 'commit' ? await engine.commitTransaction(m[1], TRACE) : await engine.rollbackTransaction(m[1], TRACE);
      const parsed = out ? JSON.parse(out) : {};
      return send(res, parsed.error_code || parsed.errors ? 400 : 200, out || '{}');
    }
    return send(res, 404, { errors: [{ error: `not found: ${req.method} ${p}` }] });
  } catch (e) {
    return send(res, 500, { errors: [{ error: String(e && e.message || e), user_facing_error: { message: String(e && e.message || e) } }] });
  }
});
server.keepAliveTimeout = 65000;
server.listen(port, '127.0.0.1');

let shuttingDown = false;
const shutdown = async () => {
  if (shuttingDown) process.exit(0);
  shuttingDown = true;
  setTimeout(() => process.exit(0), 1500).unref(); // never linger: disconnect/pool.end may hang on open sockets
  server.close();
  server.closeAllConnections?.();
  try { await engine.disconnect(TRACE); } catch {}
  try { await pool.end(); } catch {}
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
