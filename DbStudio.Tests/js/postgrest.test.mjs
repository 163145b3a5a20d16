// @supabase/postgrest-js, unchanged, against a running DbStudio (BASE_URL, PLATFORM_TOKEN from the C# test).
// Sets up its own projects, tables, policies and end users through the public APIs, then checks the
// PostgREST dialect and every auth level.
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

async function auth(project, path, body, headers = {}) {
  const res = await fetch(`${BASE}/db/${project.id}/auth/${path}`, {
    method: 'POST', headers: { apikey: project.anonKey, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const client = (project, headers) => new PostgrestClient(project.restUrl, { headers });
let A, B, anon, admin, alice, bob, carol, nokey, otherKey, aliceSession, bobSession, carolSession;

before(async () => {
  A = await api('/api/projects', { name: 'postgrest-js A' });
  B = await api('/api/projects', { name: 'postgrest-js B' });
  await sql(A, `
    create table todos (id bigserial primary key, title text not null, done boolean not null default false,
      price numeric(10,2), tags text[], meta jsonb, due date, created_at timestamptz not null default now(), user_id uuid);
    create table posts (id serial primary key, body text not null, user_id uuid);
    create table notes (id serial primary key, body text);
    create table kv (k text primary key, v int);
    insert into posts (body) values ('hello'), ('world');`);
  await api(`/api/projects/${A.id}/tables/posts/access`, {
    anon_select: true, anon_insert: false, auth_insert: true, auth_select_own: true, auth_update_own: true, auth_delete_own: true, user_id_col: 'user_id' }, 'PUT');
  await api(`/api/projects/${A.id}/tables/kv/access`, {
    anon_select: true, anon_insert: true, auth_insert: true, auth_select_own: false, auth_update_own: false, auth_delete_own: false, user_id_col: null }, 'PUT');

  aliceSession = (await auth(A, 'signup', { email: 'alice@example.com', password: 'alice password' })).body;
  bobSession = (await auth(A, 'signup', { email: 'bob@example.com', password: 'bob password' })).body;
  carolSession = (await auth(A, 'signup', { email: 'carol@example.com', password: 'carol password' })).body;
  const promoted = await fetch(`${BASE}/db/${A.id}/auth/users/${carolSession.user.id}`, {
    method: 'PATCH', headers: { authorization: `Bearer ${A.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ role: 'admin' }) });
  assert.equal(promoted.status, 200);

  anon = client(A, { apikey: A.anonKey });
  admin = client(A, { apikey: A.anonKey, Authorization: `Bearer ${A.apiKey}` });
  alice = client(A, { apikey: A.anonKey, Authorization: `Bearer ${aliceSession.access_token}` });
  bob = client(A, { apikey: A.anonKey, Authorization: `Bearer ${bobSession.access_token}` });
  carol = client(A, { apikey: A.anonKey, Authorization: `Bearer ${carolSession.access_token}` });
  nokey = client(A, {});
  otherKey = client(A, { apikey: B.anonKey });

  const { error } = await admin.from('todos').insert(Array.from({ length: 30 }, (_, i) => ({
    title: `task ${i + 1}`, done: i % 3 === 0, price: (i + 1) * 1.5, tags: i % 2 ? ['odd'] : ['even', 'x'],
    meta: { n: i + 1, nested: { even: i % 2 === 1 } }, due: i < 10 ? `2025-01-${String(i + 1).padStart(2, '0')}` : null,
    user_id: i < 5 ? aliceSession.user.id : null,
  })));
  assert.equal(error, null);
});

// ---- reading ----------------------------------------------------------------------------------------

test('select columns, alias and cast', async () => {
  const { data, error, status } = await admin.from('todos').select('id, label:title, price::text').eq('id', 2);
  assert.equal(error, null);
  assert.equal(status, 200);
  assert.deepEqual(data, [{ id: 2, label: 'task 2', price: '3.00' }]);
});

test('numeric stays exact, jsonb stays json, timestamptz is ISO 8601', async () => {
  const { data } = await admin.from('todos').select('price, meta, created_at, tags, due').eq('id', 3).single();
  assert.equal(data.price, 4.5);
  assert.deepEqual(data.meta, { n: 3, nested: { even: false } });
  assert.match(data.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$/);
  assert.deepEqual(data.tags, ['even', 'x']);
  assert.equal(data.due, '2025-01-03');
});

test('comparison filters', async () => {
  const gt = await admin.from('todos').select('id').gt('id', 27).order('id');
  assert.deepEqual(gt.data.map(r => r.id), [28, 29, 30]);
  const between = await admin.from('todos').select('id').gte('id', 3).lte('id', 5).order('id');
  assert.deepEqual(between.data.map(r => r.id), [3, 4, 5]);
  const lt = await admin.from('todos').select('id').lt('id', 3).neq('id', 1);
  assert.deepEqual(lt.data.map(r => r.id), [2]);
});

test('like, ilike, in, is, not', async () => {
  const like = await admin.from('todos').select('id').like('title', 'task 1%').order('id');
  assert.deepEqual(like.data.map(r => r.id), [1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  const ilike = await admin.from('todos').select('id').ilike('title', 'TASK 2_');
  assert.equal(ilike.data.length, 10);
  const inList = await admin.from('todos').select('id').in('id', [4, 8, 15]).order('id');
  assert.deepEqual(inList.data.map(r => r.id), [4, 8, 15]);
  const isNull = await admin.from('todos').select('id', { count: 'exact', head: true }).is('due', null);
  assert.equal(isNull.count, 20);
  const notNull = await admin.from('todos').select('id', { count: 'exact', head: true }).not('due', 'is', null);
  assert.equal(notNull.count, 10);
  const notIn = await admin.from('todos').select('id').not('id', 'in', '(1,2,3)').lte('id', 5).order('id');
  assert.deepEqual(notIn.data.map(r => r.id), [4, 5]);
  const isTrue = await admin.from('todos').select('id', { count: 'exact', head: true }).is('done', true);
  assert.equal(isTrue.count, 10);
});

test('contains and contained by on arrays and jsonb', async () => {
  const arr = await admin.from('todos').select('id', { count: 'exact', head: true }).contains('tags', ['even']);
  assert.equal(arr.count, 15);
  const json = await admin.from('todos').select('id').contains('meta', { n: 7 });
  assert.deepEqual(json.data, [{ id: 7 }]);
  const cd = await admin.from('todos').select('id', { count: 'exact', head: true }).containedBy('tags', ['odd', 'even', 'x']);
  assert.equal(cd.count, 30);
});

test('or, and, nested logic', async () => {
  const or = await admin.from('todos').select('id').or('id.eq.1,id.eq.30').order('id');
  assert.deepEqual(or.data.map(r => r.id), [1, 30]);
  const nested = await admin.from('todos').select('id').or('id.eq.2,and(id.gt.25,done.is.true)').order('id');
  assert.deepEqual(nested.data.map(r => r.id), [2, 28]);
  const quoted = await admin.from('todos').select('id').or('title.eq."task 5",title.eq."task 6"').order('id');
  assert.deepEqual(quoted.data.map(r => r.id), [5, 6]);
});

test('order with nulls, limit, range and exact count', async () => {
  const page = await admin.from('todos').select('id, due', { count: 'exact' }).order('due', { ascending: false, nullsFirst: false }).range(0, 2);
  assert.equal(page.count, 30);
  assert.deepEqual(page.data.map(r => r.due), ['2025-01-10', '2025-01-09', '2025-01-08']);
  const second = await admin.from('todos').select('id').order('id').range(10, 14);
  assert.deepEqual(second.data.map(r => r.id), [11, 12, 13, 14, 15]);
  const limited = await admin.from('todos').select('id').order('id', { ascending: false }).limit(2);
  assert.deepEqual(limited.data.map(r => r.id), [30, 29]);
});

test('planned and estimated counts', async () => {
  const planned = await admin.from('todos').select('id', { count: 'planned', head: true });
  assert.ok(planned.count >= 0);
  const estimated = await admin.from('todos').select('id', { count: 'estimated' }).limit(1);
  assert.equal(estimated.count, 30);
});

test('single and maybeSingle', async () => {
  const one = await admin.from('todos').select('title').eq('id', 9).single();
  assert.deepEqual(one.data, { title: 'task 9' });
  const none = await admin.from('todos').select('title').eq('id', -1).single();
  assert.equal(none.error.code, 'PGRST116');
  assert.equal(none.status, 406);
  const many = await admin.from('todos').select('title').lt('id', 3).single();
  assert.equal(many.error.code, 'PGRST116');
  const maybe = await admin.from('todos').select('title').eq('id', -1).maybeSingle();
  assert.equal(maybe.error, null);
  assert.equal(maybe.data, null);
  const maybeOne = await admin.from('todos').select('title').eq('id', 9).maybeSingle();
  assert.deepEqual(maybeOne.data, { title: 'task 9' });
});

// ---- writing ----------------------------------------------------------------------------------------

test('insert one and many in one transaction, with representation', async () => {
  const one = await admin.from('notes').insert({ body: 'first' }).select().single();
  assert.equal(one.status, 201);
  assert.equal(one.data.body, 'first');
  const many = await admin.from('notes').insert([{ body: 'a' }, { body: 'b' }, { body: null }]).select('body');
  assert.deepEqual(many.data, [{ body: 'a' }, { body: 'b' }, { body: null }]);
  const minimal = await admin.from('notes').insert({ body: 'quiet' });
  assert.equal(minimal.status, 201);
  assert.equal(minimal.data, null);
  // A bad row makes the whole bulk insert fail, and nothing of it stays.
  const before = await admin.from('todos').select('id', { count: 'exact', head: true });
  const bad = await admin.from('todos').insert([{ title: 'ok' }, { title: null }]);
  assert.equal(bad.error.code, '23502');
  assert.equal(bad.status, 400);
  const after = await admin.from('todos').select('id', { count: 'exact', head: true });
  assert.equal(after.count, before.count);
});

test('upsert merges or ignores duplicates', async () => {
  await admin.from('kv').insert([{ k: 'a', v: 1 }, { k: 'b', v: 2 }]);
  const merged = await admin.from('kv').upsert([{ k: 'a', v: 10 }, { k: 'c', v: 3 }]).select().order('k');
  assert.equal(merged.error, null);
  assert.deepEqual(merged.data, [{ k: 'a', v: 10 }, { k: 'c', v: 3 }]);
  const ignored = await admin.from('kv').upsert({ k: 'b', v: 99 }, { ignoreDuplicates: true }).select();
  assert.deepEqual(ignored.data, []);
  const onConflict = await admin.from('kv').upsert({ k: 'b', v: 20 }, { onConflict: 'k' }).select().single();
  assert.deepEqual(onConflict.data, { k: 'b', v: 20 });
  const dup = await admin.from('kv').insert({ k: 'a', v: 0 });
  assert.equal(dup.error.code, '23505');
  assert.equal(dup.status, 409);
});

test('update and delete with filters', async () => {
  const upd = await admin.from('notes').update({ body: 'changed' }).eq('body', 'a').select('body');
  assert.deepEqual(upd.data, [{ body: 'changed' }]);
  const updMinimal = await admin.from('notes').update({ body: 'changed again' }).eq('body', 'changed');
  assert.equal(updMinimal.status, 204);
  const del = await admin.from('notes').delete().eq('body', 'b').select();
  assert.equal(del.data.length, 1);
  const gone = await admin.from('notes').select().eq('body', 'b');
  assert.deepEqual(gone.data, []);
});

test('errors come back as PostgREST error objects', async () => {
  const badValue = await admin.from('todos').select().eq('id', 'abc');
  assert.equal(badValue.status, 400);
  assert.equal(badValue.error.code, '22P02');
  const badColumn = await admin.from('todos').select('nope');
  assert.equal(badColumn.status, 400);
  assert.equal(badColumn.error.code, '42703');
  const badTable = await admin.from('no_such_table').select();
  assert.equal(badTable.status, 404);
  const badJson = await admin.from('todos').insert({ title: 'x', meta: undefined, price: 'not a number' });
  assert.equal(badJson.status, 400);
});

// ---- auth levels and policies -----------------------------------------------------------------------

test('no key and another project\'s key are refused with 401', async () => {
  for (const c of [nokey, otherKey]) {
    const r = await c.from('posts').select();
    assert.equal(r.status, 401);
    assert.ok(r.error.message);
  }
});

test('anon reads a public table but cannot read a private one or write', async () => {
  const pub = await anon.from('posts').select('body').order('id').limit(2);
  assert.deepEqual(pub.data, [{ body: 'hello' }, { body: 'world' }]);
  const priv = await anon.from('todos').select();
  assert.equal(priv.status, 401);
  const write = await anon.from('posts').insert({ body: 'spam' });
  assert.equal(write.status, 401);
  const kv = await anon.from('kv').insert({ k: 'anon', v: 1 });
  assert.equal(kv.status, 201);
});

test('a signed-in user sees only its own rows, and public ones', async () => {
  const own = await alice.from('todos').select('id', { count: 'exact' }).order('id');
  assert.deepEqual(own.data.map(r => r.id), [1, 2, 3, 4, 5]);
  const bobs = await bob.from('todos').select('id');
  assert.deepEqual(bobs.data, []);
  const pub = await bob.from('posts').select('body').limit(1);
  assert.equal(pub.data.length, 1);
});

test('inserts get the user\'s id; naming someone else is refused', async () => {
  const mine = await bob.from('todos').insert({ title: 'bob task' }).select('title, user_id').single();
  assert.equal(mine.error, null);
  assert.equal(mine.data.user_id, bobSession.user.id);
  const spoof = await bob.from('todos').insert({ title: 'evil', user_id: aliceSession.user.id });
  assert.equal(spoof.status, 403);
  assert.equal(spoof.error.code, '42501');
});

test('updates and deletes touch only own rows', async () => {
  const other = await bob.from('todos').update({ title: 'hijacked' }).eq('id', 1).select();
  assert.deepEqual(other.data, []);
  const stillAlice = await admin.from('todos').select('title').eq('id', 1).single();
  assert.equal(stillAlice.data.title, 'task 1');
  const giveAway = await alice.from('todos').update({ user_id: bobSession.user.id }).eq('id', 2);
  assert.equal(giveAway.status, 403);
  const delOther = await bob.from('todos').delete().eq('id', 3).select();
  assert.deepEqual(delOther.data, []);
  const delOwn = await alice.from('todos').delete().eq('id', 5).select('id');
  assert.deepEqual(delOwn.data, [{ id: 5 }]);
});

test('a filterless update or delete is refused except with the DB_API_KEY', async () => {
  const upd = await alice.from('todos').update({ done: true });
  assert.equal(upd.status, 400);
  const del = await alice.from('todos').delete();
  assert.equal(del.status, 400);
  const adminAll = await admin.from('notes').delete().select('id');
  assert.equal(adminAll.error, null);
});

test('an admin end user bypasses own-row filters', async () => {
  const all = await carol.from('todos').select('id', { count: 'exact', head: true });
  const total = await admin.from('todos').select('id', { count: 'exact', head: true });
  assert.equal(all.count, total.count);
  const upd = await carol.from('todos').update({ done: true }).eq('id', 4).select('id');
  assert.deepEqual(upd.data, [{ id: 4 }]);
});

test('a table without an owner column gives users no own rows', async () => {
  const r = await alice.from('notes').select();
  assert.deepEqual(r.data, []);
});

test('refresh rotates, logout revokes at once', async () => {
  const refreshed = await auth(A, 'refresh', { refresh_token: bobSession.refresh_token });
  assert.equal(refreshed.status, 200);
  assert.notEqual(refreshed.body.access_token, bobSession.access_token);
  const reused = await auth(A, 'refresh', { refresh_token: bobSession.refresh_token });
  assert.equal(reused.status, 401);
  const login = await auth(A, 'login', { email: 'bob@example.com', password: 'bob password' });
  const bob2 = client(A, { apikey: A.anonKey, Authorization: `Bearer ${login.body.access_token}` });
  assert.equal((await bob2.from('todos').select('id')).status, 200);
  const out = await fetch(`${BASE}/db/${A.id}/auth/logout`, { method: 'POST', headers: { apikey: A.anonKey, authorization: `Bearer ${login.body.access_token}` } });
  assert.equal(out.status, 204);
  assert.equal((await bob2.from('todos').select('id')).status, 401);
});

test('HEAD counts rows', async () => {
  const r = await admin.from('posts').select('*', { count: 'exact', head: true });
  assert.equal(r.status, 200);
  assert.equal(r.count, 2);
  assert.equal(r.data, null);
});
