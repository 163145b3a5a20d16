// @supabase/postgrest-js's .rpc(), unchanged, against a running DbStudio (BASE_URL, PLATFORM_TOKEN from the C# test):
// arguments by name with defaults, GET for stable functions, set-returning functions filtered like tables, scalars,
// errors as PostgREST shapes them, and the secure default (functions closed to anon and users until allowed).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { PostgrestClient } from '@supabase/postgrest-js';

const BASE = process.env.BASE_URL.replace(/\/$/, '');
const PLATFORM = { authorization: `Bearer ${process.env.PLATFORM_TOKEN}`, 'content-type': 'application/json' };

async function api(path, body, method = 'POST') {
  const res = await fetch(BASE + path, { method, headers: PLATFORM, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} -> ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function sql(project, text) {
  const { results } = await api(`/api/projects/${project.id}/sql`, { sql: text });
  const failed = results.find(r => r.error);
  if (failed) throw new Error(`SQL failed: ${failed.statement}: ${failed.error.message}`);
  return results;
}

const client = (project, headers) => new PostgrestClient(project.restUrl, { headers });
let P, anon, admin, user;

before(async () => {
  P = await api('/api/projects', { name: 'postgrest-js rpc' });
  await sql(P, `
    create table fruit (id serial primary key, name text not null, price numeric);
    insert into fruit (name, price) values ('apple', 1.5), ('banana', 0.5), ('cherry', 3), ('date', 2);
    create table calls (id serial primary key, who text);
    create function add(a int, b int default 10) returns int language sql immutable as 'select a + b';
    create function cheap(max_price numeric default 100) returns setof fruit language sql stable as $$ select * from fruit where price <= max_price $$;
    create function tally(who text) returns bigint language sql as $$ insert into calls (who) values (who); select count(*) from calls $$;
    create function list_tags(tags text[]) returns int language sql immutable as 'select cardinality(tags)';`);
  // calls takes inserts from anyone: only the function's EXECUTE privilege decides below.
  await api(`/api/projects/${P.id}/tables/calls/access`, {
    anon_select: true, anon_insert: true, auth_insert: true, auth_select_own: false, auth_update_own: false, auth_delete_own: false, user_id_col: null }, 'PUT');
  const res = await fetch(`${BASE}/db/${P.id}/auth/signup`, {
    method: 'POST', headers: { apikey: P.anonKey, 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'rpc@example.com', password: 'rpc user password' }) });
  const session = await res.json();
  anon = client(P, { apikey: P.anonKey });
  admin = client(P, { apikey: P.anonKey, Authorization: `Bearer ${P.apiKey}` });
  user = client(P, { apikey: P.anonKey, Authorization: `Bearer ${session.access_token}` });
});

test('rpc passes arguments by name; omitted ones take their defaults', async () => {
  const { data: sum, error, status } = await admin.rpc('add', { a: 1, b: 2 });
  assert.deepEqual({ sum, error, status }, { sum: 3, error: null, status: 200 });
  const { data } = await admin.rpc('add', { a: 1 });
  assert.equal(data, 11);
});

test('rpc with get: true calls a stable function through the query string, arrays as {a,b}', async () => {
  const { data, error, status } = await admin.rpc('add', { a: 5 }, { get: true });
  assert.equal(error, null);
  assert.equal(status, 200);
  assert.equal(data, 15);
  assert.equal((await admin.rpc('list_tags', { tags: ['x', 'y', 'z'] }, { get: true })).data, 3);
});

test('a set-returning function takes select, filters, order, limit and count like a table', async () => {
  const { data, error, count } = await admin.rpc('cheap', { max_price: 2 }, { count: 'exact' })
    .select('name').ilike('name', '%a%').order('price', { ascending: false }).limit(2);
  assert.equal(error, null);
  assert.deepEqual(data, [{ name: 'date' }, { name: 'apple' }]);
  assert.equal(count, 3);
  const one = await admin.rpc('cheap').select('name, price').eq('name', 'cherry').single();
  assert.deepEqual(one.data, { name: 'cherry', price: 3 });
  const head = await admin.rpc('cheap', {}, { head: true, count: 'exact' });
  assert.equal(head.count, 4);
  assert.equal(head.data, null);
});

test('errors come back as PostgREST error objects', async () => {
  const missing = await admin.rpc('nope', { x: 1 });
  assert.equal(missing.status, 404);
  assert.equal(missing.error.code, 'PGRST202');
  assert.match(missing.error.message, /Could not find the function proj_\w+\.nope\(x\) in the schema cache/);
  const volatileGet = await admin.rpc('tally', { who: 'get' }, { get: true });
  assert.equal(volatileGet.status, 405);
  assert.equal(volatileGet.error.code, 'PGRST101');
  const badType = await admin.rpc('add', { a: 'one' });
  assert.equal(badType.status, 400);
  assert.equal(badType.error.code, '22P02');
});

test('functions are closed to anon (401) and users (403) until the owner allows them, and a refused call runs nothing', async () => {
  const before = (await admin.from('calls').select('*', { count: 'exact', head: true })).count;
  const refused = await anon.rpc('tally', { who: 'anon' });
  assert.equal(refused.status, 401);
  assert.equal(refused.error.code, '42501');
  const refusedUser = await user.rpc('tally', { who: 'user' });
  assert.equal(refusedUser.status, 403);
  assert.equal((await admin.from('calls').select('*', { count: 'exact', head: true })).count, before);

  assert.deepEqual(await api(`/api/projects/${P.id}/functions/tally/access`, undefined, 'GET'), { anon_execute: false, auth_execute: false });
  await api(`/api/projects/${P.id}/functions/tally/access`, { anon_execute: true, auth_execute: true }, 'PUT');
  const allowed = await anon.rpc('tally', { who: 'anon' });
  assert.equal(allowed.error, null);
  assert.equal(allowed.data, before + 1);
  assert.equal((await user.rpc('tally', { who: 'user' })).data, before + 2);
  assert.equal((await admin.rpc('tally', { who: 'admin' })).data, before + 3);
});
