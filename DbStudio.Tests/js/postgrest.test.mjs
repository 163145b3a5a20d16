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

// ---- issue 15: resource embedding and the rest of the grammar --------------------------------------------

let E, eAdmin, eAnon;

before(async () => {
  E = await api('/api/projects', { name: 'postgrest-js embedding' });
  await sql(E, `
    create table teams (id serial primary key, name text not null);
    create table people (id serial primary key, name text not null, team_id int references teams(id));
    create table messages (id serial primary key, body text not null, sender_id int not null references people(id), receiver_id int references people(id));
    create table tags (id serial primary key, name text not null);
    create table person_tags (person_id int references people(id), tag_id int references tags(id), primary key (person_id, tag_id));
    create table secrets (id serial primary key, person_id int references people(id), code text);
    create table docs (id serial primary key, title text not null, body text, data jsonb, during int4range, labels text[],
      tsv tsvector generated always as (to_tsvector('english', coalesce(body, ''))) stored);
    create table items (id serial primary key, name text, qty int not null default 7, note text default 'none');
    insert into teams (name) values ('red'), ('blue'), ('empty');
    insert into people (name, team_id) values ('ann', 1), ('bob', 1), ('cid', null), ('dan', 2);
    insert into messages (body, sender_id, receiver_id) values ('hi', 1, 2), ('yo', 2, 1);
    insert into tags (name) values ('x'), ('y'), ('z');
    insert into person_tags values (1, 1), (1, 2), (2, 3);
    insert into secrets (person_id, code) values (1, 's1');
    insert into docs (title, body, data, during, labels) values
      ('cats', 'The fat cats sat on the mat', '{"a": {"b": "x"}, "k": "one"}', '[1,5)', '{red,green}'),
      ('dogs', 'A dog chased the rats', '{"a": {"b": "y"}, "k": "two"}', '[5,10)', '{blue}'),
      ('birds', 'Birds sing; cats listen', '{"a": {"b": "z"}, "k": "three"}', '[20,30)', '{red}');`);
  for (const t of ['teams', 'people', 'messages', 'tags', 'person_tags', 'docs'])
    await api(`/api/projects/${E.id}/tables/${t}/access`, {
      anon_select: true, anon_insert: false, auth_insert: true, auth_select_own: false, auth_update_own: false, auth_delete_own: false, user_id_col: null }, 'PUT');
  eAdmin = client(E, { apikey: E.anonKey, Authorization: `Bearer ${E.apiKey}` });
  eAnon = client(E, { apikey: E.anonKey });
});

test('embed many-to-one as an object or null, with an alias', async () => {
  const { data, error } = await eAnon.from('people').select('name, team:teams(name)').in('name', ['ann', 'cid']).order('id');
  assert.equal(error, null);
  assert.deepEqual(data, [{ name: 'ann', team: { name: 'red' } }, { name: 'cid', team: null }]);
});

test('embed one-to-many as an array, with referenced order, limit, range, filters and or', async () => {
  const all = await eAnon.from('teams').select('name, people(name)').order('id').order('name', { referencedTable: 'people', ascending: false });
  assert.deepEqual(all.data, [{ name: 'red', people: [{ name: 'bob' }, { name: 'ann' }] }, { name: 'blue', people: [{ name: 'dan' }] }, { name: 'empty', people: [] }]);
  const limited = await eAnon.from('teams').select('name, people(name)').eq('id', 1).order('name', { referencedTable: 'people' }).limit(1, { referencedTable: 'people' });
  assert.deepEqual(limited.data, [{ name: 'red', people: [{ name: 'ann' }] }]);
  const ranged = await eAnon.from('teams').select('name, people(name)').eq('id', 1).order('name', { referencedTable: 'people' }).range(1, 1, { referencedTable: 'people' });
  assert.deepEqual(ranged.data, [{ name: 'red', people: [{ name: 'bob' }] }]);
  const filtered = await eAnon.from('teams').select('name, people(name)').eq('id', 1).eq('people.name', 'bob');
  assert.deepEqual(filtered.data, [{ name: 'red', people: [{ name: 'bob' }] }]);
  const ored = await eAnon.from('teams').select('name, people(name)').eq('id', 1).or('name.eq.ann,name.eq.zed', { referencedTable: 'people' });
  assert.deepEqual(ored.data, [{ name: 'red', people: [{ name: 'ann' }] }]);
});

test('embed many-to-many through a join table, nested levels', async () => {
  const m2m = await eAnon.from('people').select('name, tags(name)').lte('id', 2).order('id').order('name', { referencedTable: 'tags' });
  assert.deepEqual(m2m.data, [{ name: 'ann', tags: [{ name: 'x' }, { name: 'y' }] }, { name: 'bob', tags: [{ name: 'z' }] }]);
  const nested = await eAnon.from('teams').select('name, people(name, team:teams(name), tags(name))').eq('id', 2);
  assert.deepEqual(nested.data, [{ name: 'blue', people: [{ name: 'dan', team: { name: 'blue' }, tags: [] }] }]);
});

test('!inner keeps only parents with matching embedded rows, and counts them', async () => {
  const { data, count } = await eAnon.from('teams').select('name, people!inner(name)', { count: 'exact' }).eq('people.name', 'dan');
  assert.deepEqual(data, [{ name: 'blue', people: [{ name: 'dan' }] }]);
  assert.equal(count, 1);
});

test('foreign key hints, column hints, and PGRST201 / PGRST200', async () => {
  const hinted = await eAnon.from('messages').select('body, sender:people!messages_sender_id_fkey(name), receiver:people!receiver_id(name)').order('id');
  assert.deepEqual(hinted.data, [{ body: 'hi', sender: { name: 'ann' }, receiver: { name: 'bob' } }, { body: 'yo', sender: { name: 'bob' }, receiver: { name: 'ann' } }]);
  const ambiguous = await eAnon.from('messages').select('body, people(name)');
  assert.equal(ambiguous.status, 300);
  assert.equal(ambiguous.error.code, 'PGRST201');
  assert.equal(ambiguous.error.details.length, 2);
  assert.deepEqual(ambiguous.error.details.map(d => d.cardinality), ['many-to-one', 'many-to-one']);
  assert.match(ambiguous.error.hint, /'people!messages_receiver_id_fkey', 'people!messages_sender_id_fkey'/);
  const none = await eAnon.from('teams').select('name, tags(name)');
  assert.equal(none.status, 400);
  assert.equal(none.error.code, 'PGRST200');
});

test('writes embed in their response: insert, update and delete with select', async () => {
  const ins = await eAdmin.from('people').insert([{ name: 'eve', team_id: 2 }, { name: 'fay' }]).select('*, team:teams(name)');
  assert.equal(ins.error, null);
  assert.equal(ins.status, 201);
  assert.deepEqual(ins.data.map(r => [r.name, r.team]), [['eve', { name: 'blue' }], ['fay', null]]);
  const upd = await eAdmin.from('people').update({ team_id: 1 }).eq('name', 'fay').select('name, teams(name), tags(name)').single();
  assert.deepEqual(upd.data, { name: 'fay', teams: { name: 'red' }, tags: [] });
  const del = await eAdmin.from('people').delete().in('name', ['eve', 'fay']).select('name, teams(name)').order('name');
  assert.deepEqual(del.data, [{ name: 'eve', teams: { name: 'blue' } }, { name: 'fay', teams: { name: 'red' } }]);
});

test('an embedded private table stays hidden from anon', async () => {
  // secrets keeps the secure defaults: anon holds no privilege, PostgreSQL refuses → 401, nothing leaks
  const refused = await eAnon.from('people').select('name, secrets(code)');
  assert.equal(refused.status, 401);
  assert.equal(refused.error.code, '42501');
  assert.equal(refused.data, null);
  // a grant without a policy: RLS hides every row → [] (and the DB_API_KEY sees them)
  await sql(E, `grant select on secrets to proj_${E.id}_anon`);
  const hidden = await eAnon.from('people').select('name, secrets(code)').eq('id', 1);
  assert.deepEqual(hidden.data, [{ name: 'ann', secrets: [] }]);
  const admin = await eAdmin.from('people').select('name, secrets(code)').eq('id', 1);
  assert.deepEqual(admin.data, [{ name: 'ann', secrets: [{ code: 's1' }] }]);
});

test('textSearch: fts, plain, phrase and websearch, with a config', async () => {
  const ids = r => r.data.map(x => x.id);
  assert.deepEqual(ids(await eAnon.from('docs').select('id').textSearch('tsv', 'cat').order('id')), [1, 3]);
  assert.deepEqual(ids(await eAnon.from('docs').select('id').textSearch('tsv', "'fat' & 'cats'", { config: 'english' })), [1]);
  assert.deepEqual(ids(await eAnon.from('docs').select('id').textSearch('tsv', 'fat cats', { type: 'plain', config: 'english' })), [1]);
  assert.deepEqual(ids(await eAnon.from('docs').select('id').textSearch('tsv', 'cat fat', { type: 'phrase', config: 'english' })), []);
  assert.deepEqual(ids(await eAnon.from('docs').select('id').textSearch('tsv', 'dog or birds', { type: 'websearch', config: 'english' }).order('id')), [2, 3]);
  assert.deepEqual(ids(await eAnon.from('docs').select('id').textSearch('body', 'chasing', { config: 'english' })), [2]);
});

test('contains, containedBy, overlaps and range operators on arrays, ranges and jsonb', async () => {
  const ids = r => { assert.equal(r.error, null); return r.data.map(x => x.id); };
  const q = () => eAnon.from('docs').select('id').order('id');
  assert.deepEqual(ids(await q().contains('labels', ['red'])), [1, 3]);
  assert.deepEqual(ids(await q().containedBy('labels', ['red', 'blue'])), [2, 3]);
  assert.deepEqual(ids(await q().overlaps('labels', ['green', 'blue'])), [1, 2]);
  assert.deepEqual(ids(await q().contains('during', '[2,3]')), [1]);
  assert.deepEqual(ids(await q().containedBy('during', '[0,10)')), [1, 2]);
  assert.deepEqual(ids(await q().overlaps('during', '[8,25)')), [2, 3]);
  assert.deepEqual(ids(await q().rangeLt('during', '[5,6)')), [1]);
  assert.deepEqual(ids(await q().rangeGt('during', '[5,6)')), [3]);
  assert.deepEqual(ids(await q().rangeAdjacent('during', '[10,20)')), [2, 3]);
  assert.deepEqual(ids(await q().contains('data', { k: 'two' })), [2]);
  assert.deepEqual(ids(await q().containedBy('data', { a: { b: 'z' }, k: 'three', extra: 1 })), [3]);
});

test('match, imatch, likeAnyOf and match({})', async () => {
  const ids = r => { assert.equal(r.error, null); return r.data.map(x => x.id); };
  const q = () => eAnon.from('docs').select('id').order('id');
  assert.deepEqual(ids(await q().filter('title', 'match', '^[bc]')), [1, 3]);
  assert.deepEqual(ids(await q().filter('title', 'imatch', '^DO')), [2]);
  assert.deepEqual(ids(await q().not('title', 'imatch', '^C')), [2, 3]);
  assert.deepEqual(ids(await q().likeAnyOf('title', ['d%', 'b%'])), [2, 3]);
  assert.deepEqual(ids(await q().match({ title: 'dogs', id: 2 })), [2]);
});

test('JSON paths in select, filter and order', async () => {
  const sel = await eAnon.from('docs').select('id, data->a->>b, inner:data->a, data->>k').eq('id', 1);
  assert.deepEqual(sel.data, [{ id: 1, b: 'x', inner: { b: 'x' }, k: 'one' }]);
  const filtered = await eAnon.from('docs').select('id').eq('data->a->>b', 'y');
  assert.deepEqual(filtered.data, [{ id: 2 }]);
  const ordered = await eAnon.from('docs').select('id').order('data->>k', { ascending: false });
  assert.deepEqual(ordered.data.map(r => r.id), [2, 3, 1]);
});

test('insert with defaultToNull: false sends missing=default: missing keys take the column default', async () => {
  const nulls = await eAdmin.from('items').insert([{ name: 'a', qty: 1 }, { name: 'b' }]);
  assert.equal(nulls.status, 400); // qty is NOT NULL and the missing key became NULL
  const { data, error } = await eAdmin.from('items').insert([{ name: 'a', qty: 1, note: null }, { name: 'b' }], { defaultToNull: false }).select('name, qty, note');
  assert.equal(error, null);
  assert.deepEqual(data, [{ name: 'a', qty: 1, note: null }, { name: 'b', qty: 7, note: 'none' }]);
});

test('csv(), HEAD with count=exact, return=headers-only and rollback()', async () => {
  const csv = await eAnon.from('docs').select('id, title, labels').order('id').csv();
  assert.equal(csv.error, null);
  assert.equal(csv.data, 'id,title,labels\n1,cats,"{red,green}"\n2,dogs,{blue}\n3,birds,{red}');
  const head = await eAnon.from('docs').select('*', { count: 'exact', head: true }).contains('labels', ['red']);
  assert.equal(head.status, 200);
  assert.equal(head.count, 2);
  assert.equal(head.data, null);
  const res = await fetch(`${E.restUrl}/items`, {
    method: 'POST', body: JSON.stringify({ name: 'located' }),
    headers: { apikey: E.anonKey, authorization: `Bearer ${E.apiKey}`, 'content-type': 'application/json', prefer: 'return=headers-only' } });
  assert.equal(res.status, 201);
  assert.match(res.headers.get('location'), /^\/items\?id=eq\.\d+$/);
  assert.equal(res.headers.get('preference-applied'), 'return=headers-only');
  assert.equal(await res.text(), '');
  const before = await eAdmin.from('items').select('*', { count: 'exact', head: true });
  const rolled = await eAdmin.from('items').insert({ name: 'ghost' }).select('name').rollback();
  assert.equal(rolled.status, 201);
  assert.deepEqual(rolled.data, [{ name: 'ghost' }]);
  const after = await eAdmin.from('items').select('*', { count: 'exact', head: true });
  assert.equal(after.count, before.count);
});
