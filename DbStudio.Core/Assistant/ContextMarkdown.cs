// GET /api/projects/{id}/assistant/context: the project's context as Markdown for any AI that builds the project's app —
// per table the columns, access in words and ready examples (fetch CRUD, postgrest-js, end-user signup and login, an
// EventSource live list with resume), with ANON_KEY as the placeholder for the ANON key. Code blocks whose first line is
// `// dbstudio-example: …` run unchanged (with ANON_KEY replaced) in Node and browsers; a test runs them.
using System.Text;
using System.Text.Json;
using DbStudio.Core.Catalog;

namespace DbStudio.Core.Assistant;

public static class ContextMarkdown
{
    /// <summary>Tables beyond this many get their columns and access only, without a usage example.</summary>
    public const int TablesWithExamples = 20;

    public static string Render(ProjectFacts f)
    {
        const string anon = AssistantContext.AnonKeyPlaceholder;
        var sampleTable = f.Tables.FirstOrDefault(t => t.Table.IsTable)?.Table.Name ?? "todos";
        var sb = new StringBuilder();
        sb.Append($$"""
            # Project `{{f.ProjectId}}` — context for building its app

            A PostgreSQL schema (`{{f.Schema}}`) served by DbStudio: a REST API in PostgREST's dialect, end-user sign-up and
            login, and a live row stream (Server-Sent Events). Every table has row-level security generated from its access
            settings, described in words below. `{{anon}}` stands for the project's ANON key (DB panel → credentials): it is safe
            in a browser. The DB_API_KEY bypasses every rule: keep it on a server, never in an app.

            - REST base URL: `{{f.RestUrl}}` — table at `{{f.RestUrl}}/{table}`; header `apikey: {{anon}}`, plus
              `Authorization: Bearer <access_token>` for a signed-in end user.
            - End-user auth: `{{f.AuthUrl}}/signup`, `/login`, `/refresh`, `/logout`, `/user`.
            - Live rows: `{{f.RestUrl}}/{table}/stream?apikey={{anon}}[&access_token=…][&last_event_id=…]` with events
              `insert`, `update`, `delete`, `reset` (the resume point is too old: reload), `revoked` (sign in again).
            - Column types offered in the panel: {{string.Join(", ", AssistantContext.SupportedTypes)}}.

            ## Setup and helpers

            ```js
            // dbstudio-example: helpers
            const REST_URL = '{{f.RestUrl}}';
            const AUTH_URL = '{{f.AuthUrl}}';
            const ANON_KEY = '{{anon}}'; // the project's ANON key

            function headers(session, extra = {}) {
              const h = { apikey: ANON_KEY, 'content-type': 'application/json', ...extra };
              if (session) h.authorization = `Bearer ${session.access_token}`;
              return h;
            }

            async function check(res, what) {
              const text = await res.text();
              if (!res.ok) throw new Error(`${what}: ${res.status} ${text}`);
              return text ? JSON.parse(text) : null;
            }

            // End users: sign up once, log in later; keep the session (access_token, refresh_token, user).
            async function signUp(email, password) {
              return check(await fetch(`${AUTH_URL}/signup`, { method: 'POST', headers: headers(), body: JSON.stringify({ email, password }) }), 'signup');
            }
            async function logIn(email, password) {
              return check(await fetch(`${AUTH_URL}/login`, { method: 'POST', headers: headers(), body: JSON.stringify({ email, password }) }), 'login');
            }

            // CRUD in PostgREST's dialect; query like 'select=*&order=id.desc&limit=20', filter like 'id=eq.7'.
            async function list(table, query = 'select=*', session) {
              return check(await fetch(`${REST_URL}/${table}?${query}`, { headers: headers(session) }), `list ${table}`);
            }
            async function insert(table, row, session, { returning = true } = {}) {
              const prefer = returning ? 'return=representation' : 'return=minimal';
              return check(await fetch(`${REST_URL}/${table}`, { method: 'POST', headers: headers(session, { prefer }), body: JSON.stringify(row) }), `insert ${table}`);
            }
            async function update(table, filter, changes, session) {
              return check(await fetch(`${REST_URL}/${table}?${filter}`, { method: 'PATCH', headers: headers(session, { prefer: 'return=representation' }), body: JSON.stringify(changes) }), `update ${table}`);
            }
            async function remove(table, filter, session) {
              return check(await fetch(`${REST_URL}/${table}?${filter}`, { method: 'DELETE', headers: headers(session) }), `delete ${table}`);
            }
            ```

            ## A live list with resume (EventSource)

            ```js
            // dbstudio-example: live
            // Keeps `rows` (by key) in step with the table. Pass the last event id you saw (kept in localStorage in a browser)
            // to get the changes made while the page was closed; EventSource itself resumes after a dropped connection.
            function liveList(table, onChange, { session, key = 'id', lastEventId, filter = '' } = {}) {
              const storageKey = `dbstudio:${table}:last-event-id`;
              const rows = new Map();
              const params = new URLSearchParams({ apikey: ANON_KEY });
              if (session) params.set('access_token', session.access_token);
              const resumeFrom = lastEventId ?? globalThis.localStorage?.getItem(storageKey);
              if (resumeFrom) params.set('last_event_id', resumeFrom);
              const es = new EventSource(`${REST_URL}/${table}/stream?${params}${filter ? '&' + filter : ''}`);
              const live = { es, rows, lastEventId: resumeFrom ?? null, close: () => es.close() };
              const seen = (e, change) => {
                live.lastEventId = e.lastEventId;
                globalThis.localStorage?.setItem(storageKey, e.lastEventId);
                onChange([...rows.values()], change);
              };
              es.addEventListener('insert', e => { const c = JSON.parse(e.data); rows.set(c.record[key], c.record); seen(e, c); });
              es.addEventListener('update', e => { const c = JSON.parse(e.data); rows.delete(c.old_record?.[key]); rows.set(c.record[key], c.record); seen(e, c); });
              es.addEventListener('delete', e => { const c = JSON.parse(e.data); rows.delete(c.old_record[key]); seen(e, c); });
              es.addEventListener('reset', () => { rows.clear(); globalThis.localStorage?.removeItem(storageKey); onChange([], { type: 'RESET' }); });
              es.addEventListener('revoked', () => es.close()); // logout, expiry or a rotated key: sign in again
              return live;
            }
            ```

            ## With @supabase/postgrest-js

            ```js
            // dbstudio-example: postgrest-js
            import { PostgrestClient } from '@supabase/postgrest-js';

            // As anyone with the ANON key, or as a signed-in end user when given their session.
            function db(session) {
              const headers = { apikey: ANON_KEY };
              if (session) headers.Authorization = `Bearer ${session.access_token}`;
              return new PostgrestClient(REST_URL, { headers });
            }
            // const { data, error } = await db(session).from('{{sampleTable}}').insert({ ... }).select();
            // const { data } = await db().from('{{sampleTable}}').select('*').limit(20);
            // await db(session).from('{{sampleTable}}').update({ ... }).eq('id', 1);
            // await db(session).from('{{sampleTable}}').delete().eq('id', 1);
            ```


            """);
        sb.Append("## Tables\n\n");
        if (f.Tables.Count == 0) sb.Append("No tables yet.\n");
        foreach (var (t, i) in f.Tables.Select((t, i) => (t, i)))
        {
            sb.Append($"### `{t.Table.Name}`{(t.Table.IsTable ? "" : " (view)")}\n\n| column | type | notes |\n|---|---|---|\n");
            foreach (var c in t.Table.Columns)
            {
                var notes = new List<string>();
                if (c.IsPrimaryKey) notes.Add("primary key");
                if (c.NotNull && !c.IsPrimaryKey) notes.Add("required");
                if (c.Default is { } d) notes.Add($"default `{d}`");
                if (c.Generated) notes.Add("generated");
                foreach (var fk in t.ForeignKeys.Where(k => k.Columns.Contains(c.Name)))
                    notes.Add($"references `{fk.RefTable}`({string.Join(", ", fk.RefColumns)})");
                sb.Append($"| `{c.Name}` | {c.Type} | {string.Join("; ", notes)} |\n");
            }
            sb.Append("\n**Access:** ").Append(string.Join(" ", AssistantContext.AccessInWords(t))).Append("\n\n");
            if (i < TablesWithExamples && t.Table.IsTable && Example(t) is { } example)
                sb.Append("```js\n").Append(example).Append("```\n\n");
        }
        return sb.ToString();
    }

    /// <summary>
    /// A usage example for one table that works with its access settings as they are: each operation with the credential
    /// that may do it, or a comment saying who may. Needs the helpers above; runs as a module (top-level await).
    /// </summary>
    private static string? Example(TableFacts t)
    {
        if (t.Access is not { } s) return null;
        var name = t.Table.Name;
        var js = JsonSerializer.Serialize(name);
        var sb = new StringBuilder($"// dbstudio-example: table {name}\n");
        var ownCol = s.user_id_col;
        var needsSession = s.auth_insert || (ownCol is not null && (s.auth_select_own || s.auth_update_own || s.auth_delete_own));
        if (needsSession)
            sb.Append("const session = await signUp(`someone.${Date.now()}@example.com`, 'a long enough password'); // later: await logIn(email, password)\n");
        var pk = t.Table.PrimaryKey;
        var key = pk.Count == 1 ? pk[0].Name : null;
        var row = SampleRow(t);
        var insertAs = s.auth_insert ? "session" : s.anon_insert ? "undefined" : null;
        var canReadBack = insertAs == "session" ? s.anon_select || (s.auth_select_own && ownCol is not null) : s.anon_select;
        string? created = null;
        if (insertAs is null) sb.Append("// Inserting: only the DB_API_KEY (server side) may insert here.\n");
        else if (canReadBack && key is not null)
        {
            sb.Append($"const [created] = await insert({js}, {row}, {insertAs});\n");
            created = $"`{key}=eq.${{created[{JsonSerializer.Serialize(key)}]}}`";
        }
        else sb.Append($"await insert({js}, {row}, {insertAs}, {{ returning: false }}); // the inserter cannot read the row back\n");

        var order = key is not null ? $"&order={key}.desc" : "";
        if (s.anon_select) sb.Append($"const rows = await list({js}, 'select=*{order}&limit=20'); // the ANON key alone\n");
        else if (s.auth_select_own && ownCol is not null) sb.Append($"const mine = await list({js}, 'select=*{order}&limit=20', session); // own rows\n");
        else sb.Append("// Reading: only the DB_API_KEY (server side) may read here.\n");

        var changeable = t.Table.Columns.FirstOrDefault(c => !c.IsPrimaryKey && !c.Generated && c.Name != ownCol && Sample(c) is not null);
        if (created is not null && s.auth_update_own && ownCol is not null && insertAs == "session" && changeable is not null)
            sb.Append($"await update({js}, {created}, {{ {JsonSerializer.Serialize(changeable.Name)}: {Sample(changeable)} }}, session); // own rows only\n");
        if (created is not null && s.auth_delete_own && ownCol is not null && insertAs == "session")
            sb.Append($"await remove({js}, {created}, session); // own rows only\n");
        if (!(s.auth_update_own && ownCol is not null)) sb.Append("// Updating: only the DB_API_KEY (server side) may update here.\n");
        if (!(s.auth_delete_own && ownCol is not null)) sb.Append("// Deleting: only the DB_API_KEY (server side) may delete here.\n");
        var streamAs = s.anon_select ? "" : needsSession && s.auth_select_own && ownCol is not null ? ", { session }" : null;
        if (streamAs is not null)
            sb.Append($"const live = liveList({js}, rows => console.log(rows.length, 'rows'){(key is not null && key != "id" ? (streamAs == "" ? $", {{ key: {JsonSerializer.Serialize(key)} }}" : $", {{ session, key: {JsonSerializer.Serialize(key)} }}") : streamAs)});\n" +
                      "live.close();\n");
        return sb.ToString();
    }

    /// <summary>A row of sample values for the columns an insert must give (required, no default, not the owner column).</summary>
    private static string SampleRow(TableFacts t)
    {
        var parts = new List<string>();
        foreach (var c in t.Table.Columns)
        {
            if (c.Default is not null || c.Generated || c.Name == t.Access?.user_id_col) continue;
            if (!c.NotNull && parts.Count > 0) continue; // optional: left out (the first optional one shows the shape)
            if (t.ForeignKeys.Any(k => k.Columns.Contains(c.Name))) { parts.Add($"/* {c.Name}: an existing key */"); continue; }
            if (Sample(c) is { } v) parts.Add($"{JsonSerializer.Serialize(c.Name)}: {v}");
        }
        return "{ " + string.Join(", ", parts) + " }";
    }

    private static string? Sample(ColumnInfo c) => c.TypeOid switch
    {
        PgType.Text or PgType.Varchar or PgType.Bpchar => JsonSerializer.Serialize("example " + c.Name),
        PgType.Int8 or PgType.Int2 or PgType.Int4 => "1",
        PgType.Bool => "true",
        PgType.Float4 or PgType.Float8 or PgType.Numeric => "1.5",
        PgType.Timestamptz or PgType.Timestamp => "new Date().toISOString()",
        PgType.Date => "'2026-01-31'",
        PgType.Json or PgType.Jsonb => "{ example: true }",
        PgType.Uuid => "crypto.randomUUID()",
        _ => null,
    };
}
