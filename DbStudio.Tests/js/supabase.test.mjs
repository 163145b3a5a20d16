// @supabase/supabase-js 2.119.0, unchanged, against a running DbStudio (BASE_URL, PLATFORM_TOKEN from the C# test):
// createClient(SUPABASE_URL, key) with SUPABASE_URL = {host}/db/{id}/supabase — REST (rest/v1), auth (auth/v1, GoTrue's
// routes) and realtime (realtime/v1/websocket, Phoenix channels) over the same keys, users and policies as the rest
// of DbStudio.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';

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
  if (failed) throw new Error(`SQL failed: ${failed.error.message}`);
  return results;
}

/** Waits for a condition (events arrive asynchronously), failing after `ms`. */
async function until(condition, what, ms = 15000) {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 20));
  }
}

const clients = [];
let P, SUPABASE_URL;
const newClient = (key = P.anonKey) => {
  const c = createClient(SUPABASE_URL, key);
  clients.push(c);
  return c;
};

async function signedIn(email) {
  const c = newClient();
  const { data, error } = await c.auth.signUp({ email, password: `${email} password` });
  assert.equal(error, null);
  return { c, user: data.user };
}

/** Subscribes a channel and resolves with its first terminal status (SUBSCRIBED, CHANNEL_ERROR, TIMED_OUT, CLOSED). */
function subscribe(channel) {
  const statuses = [];
  const first = new Promise(resolve => channel.subscribe((status, err) => {
    statuses.push({ status, err });
    resolve({ status, err });
  }));
  return { first, statuses };
}

before(async () => {
  P = await api('/api/projects', { name: 'supabase-js' });
  SUPABASE_URL = P.supabaseUrl ?? `${BASE}/db/${P.id}/supabase`;
  await sql(P, `
    create table items (id bigserial primary key, name text not null, qty int not null default 0, user_id uuid);
    create table guestbook (id serial primary key, body text not null);
    create table secrets (id serial primary key, v text);`);
  await api(`/api/projects/${P.id}/tables/items/access`, {
    anon_select: false, anon_insert: false, auth_insert: true, auth_select_own: true, auth_update_own: true, auth_delete_own: true, user_id_col: 'user_id' }, 'PUT');
  await api(`/api/projects/${P.id}/tables/secrets/access`, {
    anon_select: false, anon_insert: false, auth_insert: false, auth_select_own: false, auth_update_own: false, auth_delete_own: false, user_id_col: null }, 'PUT');
  await api(`/api/projects/${P.id}/tables/guestbook/access`, {
    anon_select: true, anon_insert: true, auth_insert: true, auth_select_own: false, auth_update_own: false, auth_delete_own: false, user_id_col: null }, 'PUT');
  // A hand-written policy lets anon edit and delete guestbook entries too (the switches cover reading and inserting).
  const anonRole = `proj_${P.id}_anon`;
  await sql(P, `
    grant update, delete on guestbook to ${anonRole};
    create policy guest_update on guestbook for update to ${anonRole} using (true) with check (true);
    create policy guest_delete on guestbook for delete to ${anonRole} using (true);`);
});

after(async () => {
  for (const c of clients) {
    await c.removeAllChannels();
    await c.realtime.disconnect();
    await c.auth.stopAutoRefresh();
  }
});

// ---- REST ----------------------------------------------------------------------------------------------------

test('CRUD with the ANON key, under the table\'s policies', async () => {
  const anon = newClient();
  const ins = await anon.from('guestbook').insert({ body: 'hello' }).select().single();
  assert.equal(ins.error, null);
  assert.equal(ins.status, 201);
  assert.equal(ins.data.body, 'hello');
  const read = await anon.from('guestbook').select('id, body').eq('id', ins.data.id);
  assert.deepEqual(read.data, [{ id: ins.data.id, body: 'hello' }]);
  const upd = await anon.from('guestbook').update({ body: 'hello again' }).eq('id', ins.data.id).select();
  assert.equal(upd.error, null);
  assert.equal(upd.data[0].body, 'hello again');
  const del = await anon.from('guestbook').delete().eq('id', ins.data.id);
  assert.equal(del.error, null);
  assert.equal((await anon.from('guestbook').select().eq('id', ins.data.id)).data.length, 0);

  // A table anon may not read: PostgREST's 401 with PostgreSQL's error code.
  const refused = await anon.from('items').select();
  assert.equal(refused.status, 401);
  assert.equal(refused.error.code, '42501');
});

test('CRUD with the DB_API_KEY, past every policy', async () => {
  const admin = newClient(P.apiKey);
  const ins = await admin.from('items').insert([{ name: 'a', qty: 1 }, { name: 'b', qty: 2 }]).select();
  assert.equal(ins.error, null);
  assert.equal(ins.data.length, 2);
  const upd = await admin.from('items').update({ qty: 10 }).in('id', ins.data.map(r => r.id)).select('qty');
  assert.deepEqual(upd.data.map(r => r.qty), [10, 10]);
  const count = await admin.from('items').select('*', { count: 'exact', head: true }).in('id', ins.data.map(r => r.id));
  assert.equal(count.count, 2);
  const del = await admin.from('items').delete().in('id', ins.data.map(r => r.id));
  assert.equal(del.error, null);
  const secrets = await admin.from('secrets').insert({ v: 'only the owner reads this' }).select();
  assert.equal(secrets.error, null);
});

test('rpc() through rest/v1: closed to anon until allowed, then called with named arguments', async () => {
  await sql(P, `create function add_up(a int, b int default 10) returns int language sql stable as $$ select a + b $$;`);
  const anon = newClient();
  const refused = await anon.rpc('add_up', { a: 1 });
  assert.equal(refused.data, null);
  assert.equal(refused.error.code, '42501'); // the secure default: not executable by anon yet
  assert.equal((await newClient(P.apiKey).rpc('add_up', { a: 1 })).data, 11); // the DB_API_KEY always may
  await api(`/api/projects/${P.id}/functions/add_up/access`, { anon_execute: true, auth_execute: false }, 'PUT');
  const allowed = await anon.rpc('add_up', { a: 2, b: 3 });
  assert.equal(allowed.error, null);
  assert.equal(allowed.status, 200);
  assert.equal(allowed.data, 5);
  assert.equal((await anon.rpc('add_up', { a: 2 }, { get: true })).data, 12);
});

test('a schema other than public is PostgREST\'s PGRST106', async () => {
  const other = createClient(SUPABASE_URL, P.anonKey, { db: { schema: 'private' } });
  clients.push(other);
  const { error, status } = await other.from('guestbook').select();
  assert.equal(status, 406);
  assert.equal(error.code, 'PGRST106');
});

// ---- auth ----------------------------------------------------------------------------------------------------

test('signUp, signInWithPassword, getUser, own rows, refreshSession, signOut', async () => {
  const c = newClient();
  const up = await c.auth.signUp({ email: 'ann@example.com', password: 'ann password' });
  assert.equal(up.error, null);
  assert.ok(up.data.session.access_token);
  assert.equal(up.data.user.email, 'ann@example.com');
  const annId = up.data.user.id;

  const inn = await c.auth.signInWithPassword({ email: 'ann@example.com', password: 'ann password' });
  assert.equal(inn.error, null);
  assert.equal(inn.data.user.id, annId);
  assert.ok(inn.data.session.expires_at > Date.now() / 1000);
  const me = await c.auth.getUser();
  assert.equal(me.error, null);
  assert.equal(me.data.user.id, annId);

  // Own rows: inserts get the user's id, reads see only the user's rows.
  const { c: other } = await signedIn('ben@example.com');
  assert.equal((await other.from('items').insert({ name: 'ben\'s' })).error, null);
  const mine = await c.from('items').insert({ name: 'ann\'s' }).select().single();
  assert.equal(mine.error, null);
  assert.equal(mine.data.user_id, annId);
  const seen = await c.from('items').select('name, user_id');
  assert.deepEqual(seen.data, [{ name: 'ann\'s', user_id: annId }]);

  const before = (await c.auth.getSession()).data.session.access_token;
  const refreshed = await c.auth.refreshSession();
  assert.equal(refreshed.error, null);
  assert.notEqual(refreshed.data.session.access_token, before);
  assert.equal((await c.from('items').select('name')).data.length, 1);
  const stale = await fetch(`${SUPABASE_URL}/rest/v1/items`, { headers: { apikey: P.anonKey, authorization: `Bearer ${before}` } });
  assert.equal(stale.status, 401);

  const token = refreshed.data.session.access_token;
  assert.equal((await c.auth.signOut()).error, null);
  assert.equal((await c.auth.getSession()).data.session, null);
  const after = await fetch(`${SUPABASE_URL}/rest/v1/items`, { headers: { apikey: P.anonKey, authorization: `Bearer ${token}` } });
  assert.equal(after.status, 401);
  const gone = await c.auth.getUser(token);
  assert.ok(gone.error);
});

test('auth errors are the ones auth-js knows', async () => {
  const c = newClient();
  assert.equal((await c.auth.signUp({ email: 'cy@example.com', password: 'cy password' })).error, null);
  const wrong = await c.auth.signInWithPassword({ email: 'cy@example.com', password: 'not the password' });
  assert.equal(wrong.error.code, 'invalid_credentials');
  assert.equal(wrong.error.status, 400);
  assert.equal(wrong.data.session, null);
  const twice = await c.auth.signUp({ email: 'cy@example.com', password: 'cy password' });
  assert.equal(twice.error.code, 'user_already_exists');
  assert.equal(twice.error.status, 422);
  const weak = await c.auth.signUp({ email: 'dee@example.com', password: 'short' });
  assert.equal(weak.error.code, 'weak_password');
  assert.equal(weak.error.name, 'AuthWeakPasswordError');
  assert.deepEqual(weak.error.reasons, ['length']);
});

// ---- realtime ------------------------------------------------------------------------------------------------

test('realtime: INSERT, UPDATE and DELETE arrive for a filter, and only the user\'s own rows', async () => {
  const { c, user } = await signedIn('eve@example.com');
  const { c: other } = await signedIn('fay@example.com');
  const watched = [], inserts = [];
  const channel = c.channel('items-watch')
    .on('postgres_changes', { event: '*', schema: 'public', table: 'items', filter: 'name=eq.watched' }, p => watched.push(p))
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'items' }, p => inserts.push(p));
  const { first } = subscribe(channel);
  assert.equal((await first).status, 'SUBSCRIBED');

  // Each change is awaited before the next write: a change is shown with the row as it is when it is handed out.
  assert.equal((await other.from('items').insert({ name: 'watched' })).error, null); // fay's row: not eve's to see
  assert.equal((await c.from('items').insert({ name: 'ignored' })).error, null);
  const row = (await c.from('items').insert({ name: 'watched', qty: 1 }).select().single()).data;
  await until(() => watched.length === 1, 'the insert');
  assert.equal((await c.from('items').update({ qty: 2 }).eq('id', row.id)).error, null);
  await until(() => watched.length === 2, 'the update');
  assert.equal((await c.from('items').delete().eq('id', row.id)).error, null);
  await until(() => watched.length === 3, 'the delete');
  assert.deepEqual(watched.map(p => p.eventType), ['INSERT', 'UPDATE', 'DELETE']);
  const [ins, upd, del] = watched;
  assert.equal(ins.schema, 'public');
  assert.equal(ins.table, 'items');
  assert.ok(!Number.isNaN(Date.parse(ins.commit_timestamp)));
  assert.deepEqual(ins.new, { id: row.id, name: 'watched', qty: 1, user_id: user.id });
  assert.deepEqual(ins.old, {});
  assert.equal(upd.new.qty, 2);
  assert.deepEqual(upd.old, { id: row.id }); // the old row's key, as Realtime sends it without REPLICA IDENTITY FULL
  assert.equal(del.old.id, row.id);
  assert.deepEqual(del.new, {});
  // The unfiltered INSERT binding saw both of eve's inserts, in order, and nothing of fay's.
  await until(() => inserts.length >= 2, 'two inserts');
  assert.deepEqual(inserts.map(p => p.new.name), ['ignored', 'watched']);
  assert.ok(inserts.every(p => p.new.user_id === user.id));
  assert.equal(await c.removeChannel(channel), 'ok');
});

test('realtime: a table the credential cannot read is refused', async () => {
  const { c } = await signedIn('gus@example.com');
  const secrets = c.channel('secrets').on('postgres_changes', { event: '*', schema: 'public', table: 'secrets' }, () => {});
  const refused = await subscribe(secrets).first;
  assert.equal(refused.status, 'CHANNEL_ERROR');
  assert.match(refused.err.message, /permission denied|policy|read/i);
  await c.removeChannel(secrets);

  const anon = newClient();
  const items = anon.channel('items-anon').on('postgres_changes', { event: '*', schema: 'public', table: 'items' }, () => {});
  const anonRefused = await subscribe(items).first;
  assert.equal(anonRefused.status, 'CHANNEL_ERROR');
  await anon.removeChannel(items);

  const wrongSchema = anon.channel('elsewhere').on('postgres_changes', { event: '*', schema: 'private', table: 'guestbook' }, () => {});
  const schemaRefused = await subscribe(wrongSchema).first;
  assert.equal(schemaRefused.status, 'CHANNEL_ERROR');
  assert.match(schemaRefused.err.message, /public/);
  await anon.removeChannel(wrongSchema);
});

test('realtime: anon follows a public table; signing out ends a signed-in channel', async () => {
  const anon = newClient();
  const seen = [];
  const open = anon.channel('guestbook').on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'guestbook' }, p => seen.push(p));
  assert.equal((await subscribe(open).first).status, 'SUBSCRIBED');
  assert.equal((await anon.from('guestbook').insert({ body: 'live' })).error, null);
  await until(() => seen.length === 1, 'the guestbook insert');
  assert.equal(seen[0].new.body, 'live');

  const { c } = await signedIn('hal@example.com');
  const mine = c.channel('hal-items').on('postgres_changes', { event: '*', schema: 'public', table: 'items' }, () => {});
  const { first, statuses } = subscribe(mine);
  assert.equal((await first).status, 'SUBSCRIBED');
  assert.equal((await c.auth.signOut()).error, null);
  await until(() => statuses.some(s => s.status === 'CLOSED'), 'the channel to close after sign-out');
});
