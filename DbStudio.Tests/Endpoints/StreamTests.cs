// The live row stream (DESIGN §6) through a real SSE client against the running app: event shapes, refusal, own-row
// filtering including deletes, resume with Last-Event-ID, changes from the console and from psql, filters, and two
// app instances on one database.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Core.Streams;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace DbStudio.Tests.Endpoints;

public class StreamTests(TestApp app)
{
    private sealed record World(HttpClient Owner, ProjectInfo Project);

    private async Task<World> NewProjectAsync(string table = "tasks", object? access = null)
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "stream");
        var r = await TestApp.SqlAsync(owner, p.Id, $"create table {table} (id serial primary key, title text, status text, user_id uuid)");
        Assert.False(r[0].TryGetProperty("error", out var e), e.ToString());
        if (access is not null)
            (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/{table}/access", access)).EnsureSuccessStatusCode();
        return new World(owner, p);
    }

    private static object Settings(bool anonSelect = false, bool selectOwn = true, string? owner = "user_id") => new
    {
        anon_select = anonSelect, anon_insert = false, auth_insert = true, auth_select_own = selectOwn, auth_update_own = true,
        auth_delete_own = true, user_id_col = owner,
    };

    private async Task<JsonElement> RestAsync(HttpMethod method, string path, string? bearer, object? body = null, string? apikey = null)
    {
        var req = new HttpRequestMessage(method, path);
        if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        if (apikey is not null) req.Headers.Add("apikey", apikey);
        req.Headers.Add("Prefer", "return=representation");
        if (body is not null) req.Content = JsonContent.Create(body);
        var res = await app.Factory.CreateClient().SendAsync(req);
        var text = await res.Content.ReadAsStringAsync();
        Assert.True(res.IsSuccessStatusCode, $"{method} {path}: {(int)res.StatusCode} {text}");
        return text.Length == 0 ? default : JsonSerializer.Deserialize<JsonElement>(text);
    }

    private async Task<(string Token, string Id)> SignupAsync(ProjectInfo p, string who)
    {
        var body = await RestAsync(HttpMethod.Post, $"/db/{p.Id}/auth/signup", null,
            new { email = $"{who}-{Guid.NewGuid():N}@example.com", password = $"{who} password" }, p.AnonKey);
        return (body.GetProperty("access_token").GetString()!, body.GetProperty("user").GetProperty("id").GetString()!);
    }

    private async Task<SseClient> OpenAsync(ProjectInfo p, string query = "", string? bearer = null, string? lastEventId = null, string table = "tasks") =>
        await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/{table}/stream{query}", bearer, lastEventId, await app.StreamIdDecoderAsync(p.Id));

    [Fact]
    public async Task Inserts_updates_and_deletes_arrive_as_documented()
    {
        var w = await NewProjectAsync();
        var p = w.Project;
        await using var s = await OpenAsync(p, bearer: p.ApiKey);
        Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);
        Assert.Equal("text/event-stream", s.Response.Content.Headers.ContentType!.MediaType);

        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        // (Each event shows the row as GET shows it when the event goes out: a row already deleted by then is not sent as
        // inserted. So each change is read before the next is made.)
        var row = (await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", p.ApiKey, new { title = "write tests", status = "open" }))[0];
        var id = row.GetProperty("id").GetInt32();
        var insert = await s.NextAsync();
        Assert.Equal("insert", insert.Type);
        Assert.Equal("INSERT", insert.Data.GetProperty("type").GetString());
        Assert.Equal("tasks", insert.Data.GetProperty("table").GetString());
        Assert.Equal($"proj_{p.Id}", insert.Data.GetProperty("schema").GetString());
        Assert.Equal("write tests", insert.RecordText("title"));
        Assert.Equal(id, insert.Data.GetProperty("record").GetProperty("id").GetInt32());
        Assert.Equal(JsonValueKind.Null, insert.Data.GetProperty("old_record").ValueKind);
        var committed = DateTimeOffset.Parse(insert.Data.GetProperty("commit_timestamp").GetString()!);
        Assert.InRange(committed, before, DateTimeOffset.UtcNow.AddSeconds(1));

        await RestAsync(HttpMethod.Patch, $"/db/{p.Id}/rest/tasks?id=eq.{id}", p.ApiKey, new { status = "done" });
        var update = await s.NextAsync();
        Assert.Equal("update", update.Type);
        Assert.Equal("UPDATE", update.Data.GetProperty("type").GetString());
        Assert.Equal("done", update.RecordText("status"));
        // old_record: the old row's key only (nothing of a version GET may never have shown)
        Assert.Equal(["id"], update.Data.GetProperty("old_record").EnumerateObject().Select(x => x.Name));

        await RestAsync(HttpMethod.Delete, $"/db/{p.Id}/rest/tasks?id=eq.{id}", p.ApiKey);
        var delete = await s.NextAsync();
        Assert.Equal("delete", delete.Type);
        Assert.Equal("DELETE", delete.Data.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, delete.Data.GetProperty("record").ValueKind);
        Assert.Equal(id, delete.Data.GetProperty("old_record").GetProperty("id").GetInt32());

        Assert.True(insert.IdNumber < update.IdNumber && update.IdNumber < delete.IdNumber);
        Assert.Contains("retry: 2000\n", s.Raw);
    }

    [Fact]
    public async Task A_credential_that_can_read_nothing_is_refused_before_the_stream_starts()
    {
        var w = await NewProjectAsync(access: Settings(anonSelect: false, owner: null));
        var p = w.Project;
        await using (var anon = await OpenAsync(p, $"?apikey={p.AnonKey}"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anon.Response.StatusCode);
            Assert.Equal("42501", (await anon.Response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());
        }
        var (token, _) = await SignupAsync(p, "nobody");
        await using (var user = await OpenAsync(p, $"?apikey={p.AnonKey}&access_token={token}"))
            Assert.Equal(HttpStatusCode.Forbidden, user.Response.StatusCode); // no owner column: users own no rows
        await using (var none = await OpenAsync(p))
            Assert.Equal(HttpStatusCode.Unauthorized, none.Response.StatusCode);
        var other = await TestApp.CreateProjectAsync(w.Owner, "other");
        await using (var wrongKey = await OpenAsync(p, $"?apikey={other.AnonKey}"))
            Assert.Equal(HttpStatusCode.Unauthorized, wrongKey.Response.StatusCode);

        (await w.Owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/tasks/access", Settings(anonSelect: true))).EnsureSuccessStatusCode();
        await using var allowed = await OpenAsync(p, $"?apikey={p.AnonKey}");
        Assert.Equal(HttpStatusCode.OK, allowed.Response.StatusCode);
        await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", p.ApiKey, new { title = "public" });
        Assert.Equal("public", (await allowed.NextAsync()).RecordText("title"));
    }

    [Fact]
    public async Task Users_receive_only_changes_to_rows_they_may_read_including_deletes()
    {
        var w = await NewProjectAsync(access: Settings());
        var p = w.Project;
        var (alice, aliceId) = await SignupAsync(p, "alice");
        var (bob, bobId) = await SignupAsync(p, "bob");
        var (carol, carolId) = await SignupAsync(p, "carol");
        var promote = new HttpRequestMessage(HttpMethod.Patch, $"/db/{p.Id}/auth/users/{carolId}") { Content = JsonContent.Create(new { role = "admin" }) };
        promote.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        (await app.Factory.CreateClient().SendAsync(promote)).EnsureSuccessStatusCode();

        await using var aliceStream = await OpenAsync(p, $"?apikey={p.AnonKey}&access_token={alice}");
        await using var bobStream = await OpenAsync(p, $"?apikey={p.AnonKey}&access_token={bob}");
        await using var carolStream = await OpenAsync(p, $"?apikey={p.AnonKey}&access_token={carol}");
        Assert.Equal(HttpStatusCode.OK, aliceStream.Response.StatusCode);

        // Each step is read before the next is made: an event shows the row as GET shows it when it goes out.
        var aliceSaw = new List<SseEvent>();
        var bobSaw = new List<SseEvent>();
        var carolSaw = new List<SseEvent>(); // an admin end user sees every row
        var a = (await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", alice, new { title = "alice's" }, p.AnonKey))[0].GetProperty("id").GetInt32();
        aliceSaw.AddRange(await ReadAsync(aliceStream, 1));
        carolSaw.AddRange(await ReadAsync(carolStream, 1));
        await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", bob, new { title = "bob's" }, p.AnonKey);
        bobSaw.AddRange(await ReadAsync(bobStream, 1));
        carolSaw.AddRange(await ReadAsync(carolStream, 1));
        await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", p.ApiKey, new { title = "nobody's" });
        carolSaw.AddRange(await ReadAsync(carolStream, 1));
        await RestAsync(HttpMethod.Patch, $"/db/{p.Id}/rest/tasks?id=eq.{a}", alice, new { status = "mine" }, p.AnonKey);
        aliceSaw.AddRange(await ReadAsync(aliceStream, 1));
        carolSaw.AddRange(await ReadAsync(carolStream, 1));
        // The admin hands alice's row to bob: for alice it is gone, for bob it appears.
        await RestAsync(HttpMethod.Patch, $"/db/{p.Id}/rest/tasks?id=eq.{a}", p.ApiKey, new { user_id = bobId });
        aliceSaw.AddRange(await ReadAsync(aliceStream, 1));
        bobSaw.AddRange(await ReadAsync(bobStream, 1));
        carolSaw.AddRange(await ReadAsync(carolStream, 1));
        await RestAsync(HttpMethod.Delete, $"/db/{p.Id}/rest/tasks?id=eq.{a}", bob, apikey: p.AnonKey);
        bobSaw.AddRange(await ReadAsync(bobStream, 1));
        carolSaw.AddRange(await ReadAsync(carolStream, 1));

        Assert.Equal(["insert:alice's", "update:mine", "delete:"], aliceSaw.Select(Describe));
        Assert.All(aliceSaw.Where(e => e.Type != "delete"), e => Assert.Equal(aliceId, e.RecordText("user_id")));
        Assert.Equal(a, aliceSaw[2].Data.GetProperty("old_record").GetProperty("id").GetInt32());
        Assert.Equal(["insert:bob's", "insert:mine", "delete:"], bobSaw.Select(Describe)); // entering his view: an insert
        Assert.Equal(["insert:alice's", "insert:bob's", "insert:nobody's", "update:mine", "update:mine", "delete:"], carolSaw.Select(Describe));
        Assert.Empty(await aliceStream.DrainAsync(TimeSpan.FromMilliseconds(300))); // and nothing of bob's
    }

    private static string Describe(SseEvent e) => $"{e.Type}:{(e.Type == "delete" ? "" : e.RecordText("status") ?? e.RecordText("title"))}";

    private static async Task<List<SseEvent>> ReadAsync(SseClient s, int count)
    {
        var list = new List<SseEvent>();
        for (var i = 0; i < count; i++) list.Add(await s.NextAsync());
        list.AddRange(await s.DrainAsync(TimeSpan.FromMilliseconds(400)));
        return list;
    }

    [Fact]
    public async Task Resuming_with_Last_Event_ID_delivers_exactly_the_missed_events_in_order()
    {
        var w = await NewProjectAsync();
        var p = w.Project;
        await TestApp.SqlAsync(w.Owner, p.Id, "create table other (id serial primary key, x int)");
        string lastSeen;
        await using (var first = await OpenAsync(p, bearer: p.ApiKey))
        {
            await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", p.ApiKey, new { title = "seen" });
            lastSeen = (await first.NextAsync()).Id!;
        }
        // While disconnected: three changes to this table and one to another.
        await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", p.ApiKey, new[] { new { title = "missed 1" }, new { title = "missed 2" } });
        await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/other", p.ApiKey, new { x = 1 });
        await RestAsync(HttpMethod.Patch, $"/db/{p.Id}/rest/tasks?title=eq.seen", p.ApiKey, new { status = "missed 3" });

        await using (var resumed = await OpenAsync(p, bearer: p.ApiKey, lastEventId: lastSeen))
        {
            var got = await ReadAsync(resumed, 3);
            Assert.Equal(["insert:missed 1", "insert:missed 2", "update:missed 3"], got.Select(Describe));
            Assert.True(got.Select(e => e.IdNumber).SequenceEqual(got.Select(e => e.IdNumber).Order()));
            Assert.True(got[0].IdNumber > (await app.StreamIdDecoderAsync(p.Id))(lastSeen));
            // and it goes on live
            await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", p.ApiKey, new { title = "live" });
            Assert.Equal("insert:live", Describe(await resumed.NextAsync()));
        }
        // The query parameter form, for EventSource-less clients, says the same.
        await using (var byParam = await OpenAsync(p, $"?last_event_id={lastSeen}", bearer: p.ApiKey))
            Assert.Equal(["insert:missed 1", "insert:missed 2", "update:missed 3", "insert:live"], (await ReadAsync(byParam, 4)).Select(Describe));

        await using (var bad = await OpenAsync(p, bearer: p.ApiKey, lastEventId: "yesterday"))
            Assert.Equal(HttpStatusCode.BadRequest, bad.Response.StatusCode);
    }

    [Fact]
    public async Task An_id_older_than_the_retained_log_gets_a_reset_event()
    {
        var w = await NewProjectAsync();
        var p = w.Project;
        string firstId;
        await using (var first = await OpenAsync(p, bearer: p.ApiKey))
        {
            for (var i = 0; i < 3; i++) await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", p.ApiKey, new { title = $"old {i}" });
            firstId = (await first.NextAsync()).Id!;
        }
        await using (var conn = new NpgsqlConnection(app.Db.PlatformConnectionString))
        {
            await conn.OpenAsync();
            // Age the log as the retention would, then prune.
            await using var age = new NpgsqlCommand("UPDATE dbstudio_realtime.changes SET committed_at = now() - interval '2 days' WHERE schema_name = $1", conn);
            age.Parameters.Add(new() { Value = $"proj_{p.Id}" });
            await age.ExecuteNonQueryAsync();
        }
        await app.Service<ChangeHub>().PruneAsync();

        await using var s = await OpenAsync(p, bearer: p.ApiKey, lastEventId: firstId);
        var reset = await s.NextAsync();
        Assert.Equal("reset", reset.Type);
        Assert.Equal(reset.Id, reset.Data.GetProperty("last_event_id").GetString());
        Assert.True(reset.IdNumber >= 3);
        await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", p.ApiKey, new { title = "after reset" });
        Assert.Equal("insert:after reset", Describe(await s.NextAsync()));
    }

    [Fact]
    public async Task Changes_from_the_console_and_from_psql_are_streamed()
    {
        var w = await NewProjectAsync();
        var p = w.Project;
        await using var s = await OpenAsync(p, bearer: p.ApiKey);
        await TestApp.SqlAsync(w.Owner, p.Id, "insert into tasks (title) values ('from the console')");
        Assert.Equal("insert:from the console", Describe(await s.NextAsync()));

        var (exit, _, error) = await TestApp.PsqlAsync(p.ConnectionUrl, "-v", "ON_ERROR_STOP=1", "-c", "update tasks set status = 'from psql'",
            "-c", "begin; insert into tasks (title) values ('tx 1'); insert into tasks (title) values ('tx 2'); commit;");
        Assert.True(exit == 0, error);
        Assert.Equal(["update:from psql", "insert:tx 1", "insert:tx 2"], (await ReadAsync(s, 3)).Select(Describe));

        // A table made outside the panel records its changes from its first subscription on.
        await RunPsqlAsync(p, "create table made_in_psql (id int primary key, v text)");
        await using var s2 = await OpenAsync(p, bearer: p.ApiKey, table: "made_in_psql");
        Assert.Equal(HttpStatusCode.OK, s2.Response.StatusCode);
        await RunPsqlAsync(p, "insert into made_in_psql values (1, 'direct')");
        Assert.Equal("direct", (await s2.NextAsync()).RecordText("v"));
    }

    private async Task<HttpResponseMessage> Get(ProjectInfo p, string query)
    {
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/tasks{query}");
        req.Headers.Authorization = new("Bearer", p.ApiKey);
        return await http.SendAsync(req);
    }

    private static async Task RunPsqlAsync(ProjectInfo p, string sql)
    {
        var (exit, _, error) = await TestApp.PsqlAsync(p.ConnectionUrl, "-v", "ON_ERROR_STOP=1", "-c", sql);
        Assert.True(exit == 0, error);
    }

    [Fact]
    public async Task Filters_narrow_the_stream_and_a_row_leaving_the_filter_arrives_as_a_delete()
    {
        var w = await NewProjectAsync();
        var p = w.Project;
        await using var s = await OpenAsync(p, "?status=eq.open&or=(title.like.keep*,title.eq.urgent)", bearer: p.ApiKey);
        Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);
        await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", p.ApiKey, new[]
        {
            new { title = "keep me", status = "open" }, new { title = "urgent", status = "open" },
            new { title = "keep me too", status = "closed" }, new { title = "other", status = "open" },
        });
        Assert.Equal(["insert:open", "insert:open"], (await ReadAsync(s, 2)).Select(Describe));
        await RestAsync(HttpMethod.Patch, $"/db/{p.Id}/rest/tasks?title=eq.urgent", p.ApiKey, new { status = "closed" });
        Assert.Equal(["delete:"], (await ReadAsync(s, 1)).Select(Describe));

        // A filter PostgreSQL refuses is refused as GET refuses it (here: no @> for text).
        await using var bad = await OpenAsync(p, "?title=cs.{x}", bearer: p.ApiKey);
        var get = await Get(p, "?title=cs.{x}");
        Assert.True(get.StatusCode >= HttpStatusCode.BadRequest);
        Assert.Equal(get.StatusCode, bad.Response.StatusCode);
        await using var notInt = await OpenAsync(p, "?id=eq.abc", bearer: p.ApiKey);
        Assert.Equal(HttpStatusCode.BadRequest, notInt.Response.StatusCode);
        await using var unknown = await OpenAsync(p, "?nope=eq.1", bearer: p.ApiKey);
        Assert.Equal(HttpStatusCode.BadRequest, unknown.Response.StatusCode);
        await using var missing = await OpenAsync(p, bearer: p.ApiKey, table: "no_such_table");
        Assert.Equal(HttpStatusCode.NotFound, missing.Response.StatusCode);
    }

    [Fact]
    public async Task A_change_made_through_one_instance_reaches_subscribers_on_another()
    {
        var w = await NewProjectAsync();
        var p = w.Project;
        await using var second = new AppFactory(app.Db.PlatformConnectionString,
            new Dictionary<string, string?> { ["DbStudio:Streams:Heartbeat"] = "00:00:01" });
        var secondUrl = second.StartOnLoopback();

        await using var onSecond = await SseClient.OpenAsync(secondUrl, $"/db/{p.Id}/rest/tasks/stream", p.ApiKey);
        await using var onFirst = await OpenAsync(p, bearer: p.ApiKey);
        Assert.Equal(HttpStatusCode.OK, onSecond.Response.StatusCode);
        await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/tasks", p.ApiKey, new { title = "via the first instance" }); // instance 1
        Assert.Equal("insert:via the first instance", Describe(await onSecond.NextAsync()));
        Assert.Equal("insert:via the first instance", Describe(await onFirst.NextAsync()));

        // and the other way round
        var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/rest/tasks") { Content = JsonContent.Create(new { title = "via the second" }) };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        (await new HttpClient { BaseAddress = secondUrl }.SendAsync(req)).EnsureSuccessStatusCode();
        Assert.Equal("insert:via the second", Describe(await onFirst.NextAsync()));
        Assert.Equal("insert:via the second", Describe(await onSecond.NextAsync()));

        // An idle stream carries a heartbeat comment (1 s here, 15 s by default).
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        Assert.Contains(": heartbeat\n", onSecond.Raw);
    }

    [Fact]
    public async Task A_table_that_grew_after_its_stream_began_is_looked_up_by_key_not_read_whole_for_each_change()
    {
        // A stream that begins on a small table: PostgreSQL plans the visibility statement while the table is small (a
        // whole-table read is the cheaper plan then) and keeps that plan for the session. Once the table has grown —
        // without an ANALYZE in between — every later batch must still look its rows up by key, for the admin and for
        // a signed-in user whose own rows are most of the table (a plan that joins the changes with all of them reads
        // them all through the index for each batch).
        var w = await NewProjectAsync("grow", Settings());
        var p = w.Project;
        await TestApp.SqlAsync(w.Owner, p.Id, "alter table grow set (autovacuum_enabled = false)");
        var (alice, aliceId) = await SignupAsync(p, "alice");
        await using var admin = await OpenAsync(p, bearer: p.ApiKey, table: "grow");
        await using var own = await OpenAsync(p, $"?apikey={p.AnonKey}&access_token={alice}", table: "grow");
        async Task BothSeeAsync(string title)
        {
            Assert.Equal($"insert:{title}", Describe(await admin.NextAsync()));
            Assert.Equal($"insert:{title}", Describe(await own.NextAsync()));
        }
        for (var i = 0; i < 8; i++)
        {
            await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/grow", p.ApiKey, new { title = $"small {i}", user_id = aliceId });
            await BothSeeAsync($"small {i}");
        }
        var bulk = await TestApp.SqlAsync(w.Owner, p.Id, $"insert into grow (title, user_id) select 'bulk', '{aliceId}' from generate_series(1, 5000)");
        Assert.False(bulk[0].TryGetProperty("error", out var e), e.ToString());
        for (var n = 0; n < 5000; n++) await BothSeeAsync("bulk");
        for (var i = 0; i < 5; i++)
        {
            await RestAsync(HttpMethod.Post, $"/db/{p.Id}/rest/grow", p.ApiKey, new { title = $"large {i}", user_id = aliceId });
            await BothSeeAsync($"large {i}");
        }
        // Every change was read back by its key for each of the two: 10,026 index lookups of one row each, once the
        // sessions have reported them (when idle, up to seconds later) — and no read of the whole grown table.
        long tuplesReadWhole = 0, lookups = 0, fetched = 0;
        for (var deadline = DateTime.UtcNow.AddSeconds(90); lookups < 10026 && DateTime.UtcNow < deadline; await Task.Delay(200))
        {
            var r = await TestApp.SqlAsync(w.Owner, p.Id,
                "select seq_tup_read, coalesce(idx_scan, 0), coalesce(idx_tup_fetch, 0) from pg_stat_user_tables where relid = 'grow'::regclass");
            var row = r[0].GetProperty("rows")[0];
            (tuplesReadWhole, lookups, fetched) = (row[0].GetInt64(), row[1].GetInt64(), row[2].GetInt64());
        }
        Assert.True(lookups >= 10026 && tuplesReadWhole < 5000 && fetched <= lookups + 100,
            $"index lookups {lookups} (10,026 expected), rows they fetched {fetched}, rows read by whole-table reads {tuplesReadWhole}");
    }

    [Fact]
    public async Task A_project_cannot_write_into_another_projects_change_log()
    {
        var w = await NewProjectAsync();
        var victim = await NewProjectAsync();
        await using var s = await OpenAsync(victim.Project, bearer: victim.Project.ApiKey);
        var attempts = new[]
        {
            $"insert into dbstudio_realtime.changes values ('proj_{victim.Project.Id}', 999999, 'tasks', 'i', '{{}}', null, now())",
            $"update dbstudio_realtime.streams set last_id = last_id + 100 where schema_name = 'proj_{victim.Project.Id}'",
            "select * from dbstudio_realtime.changes",
            $"select pg_notify('dbstudio_changes', 'proj_{victim.Project.Id}')",
            // The log's row security asks caller_schema(), which PostgreSQL inlines into the writer's own statement: a
            // function of the writer's that shadows what it calls, first on the search_path, must not make it answer
            // the victim's schema.
            $"create or replace function proj_{w.Project.Id}.substring(text, text) returns text language sql as $$ select 'proj_{victim.Project.Id}' $$; " +
            $"create or replace function proj_{w.Project.Id}.substring(name, text) returns text language sql as $$ select 'proj_{victim.Project.Id}' $$; " +
            $"set search_path = proj_{w.Project.Id}, pg_catalog; " +
            "insert into dbstudio_realtime.changes (schema_name, id, table_name, table_oid, op, record, committed_at) " +
            $"values ('proj_{victim.Project.Id}', 999998, 'tasks', 0, 'i', '{{}}', now())",
        };
        foreach (var sql in attempts) await TestApp.SqlAsync(w.Owner, w.Project.Id, sql);
        var errors = (await TestApp.SqlAsync(w.Owner, w.Project.Id, attempts[0])).Concat(await TestApp.SqlAsync(w.Owner, w.Project.Id, attempts[2]));
        // (42501: refused by the log's row security, not by a missing column.)
        Assert.Equal("42501", (await TestApp.SqlAsync(w.Owner, w.Project.Id, attempts[^1]))[^1].GetProperty("error").GetProperty("code").GetString());
        Assert.All(errors, r => Assert.True(r.TryGetProperty("error", out _) || r.GetProperty("rows").GetArrayLength() == 0, r.ToString()));
        // Nothing reached the victim's stream; its own changes still do, with the next id in sequence.
        Assert.Empty(await s.DrainAsync(TimeSpan.FromMilliseconds(500)));
        await RestAsync(HttpMethod.Post, $"/db/{victim.Project.Id}/rest/tasks", victim.Project.ApiKey, new { title = "real" });
        Assert.Equal("insert:real", Describe(await s.NextAsync()));
    }
}

public class StreamOrderingTests(TestApp app)
{
    [Fact]
    public async Task Concurrent_writers_give_consecutive_ids_and_a_resumed_client_misses_and_repeats_nothing()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "ordering");
        await TestApp.SqlAsync(owner, p.Id, "create table hits (id serial primary key, writer int, n int)");
        var path = $"/db/{p.Id}/rest/hits/stream";
        var decode = await app.StreamIdDecoderAsync(p.Id);
        await using var steady = await SseClient.OpenAsync(app.BaseUrl, path, p.ApiKey, decodeId: decode);
        var interrupted = await SseClient.OpenAsync(app.BaseUrl, path, p.ApiKey, decodeId: decode);

        const int writers = 8, each = 25, total = writers * each;
        var writes = Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            using var http = new HttpClient { BaseAddress = app.BaseUrl };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
            for (var n = 0; n < each; n++)
                (await http.PostAsJsonAsync($"/db/{p.Id}/rest/hits", new { writer = w, n })).EnsureSuccessStatusCode();
        })).ToList();

        // The interrupted client leaves after 50 events, while the writers go on, and comes back with its last id.
        var second = new List<long>();
        string? lastId = null;
        for (var i = 0; i < 50; i++)
        {
            var e = await interrupted.NextAsync();
            second.Add(e.IdNumber);
            lastId = e.Id;
        }
        await interrupted.DisposeAsync();
        await Task.Delay(200);
        await using var resumed = await SseClient.OpenAsync(app.BaseUrl, path, p.ApiKey, lastId, decode);
        await Task.WhenAll(writes);
        while (second.Count < total) second.Add((await resumed.NextAsync()).IdNumber);

        var first = new List<long>();
        while (first.Count < total) first.Add((await steady.NextAsync()).IdNumber);

        // Every change once, in commit order, ids consecutive (this project changed nothing else).
        Assert.Equal(Enumerable.Range(0, total).Select(i => first[0] + i), first);
        Assert.Equal(first, second);
        Assert.Empty(await steady.DrainAsync(TimeSpan.FromMilliseconds(300)));
        Assert.Empty(await resumed.DrainAsync(TimeSpan.FromMilliseconds(100)));
        // and every acknowledged write is in the table
        var rows = await TestApp.SqlAsync(owner, p.Id, "select count(*) from hits");
        Assert.Equal(total.ToString(), rows[0].GetProperty("rows")[0][0].ToString());
    }

    [Fact]
    public async Task A_subscriber_that_falls_behind_is_dropped_with_a_final_frame_and_others_are_unaffected()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "slow");
        await TestApp.SqlAsync(owner, p.Id, "create table t (id int primary key)");
        var table = (await app.Service<DbStudio.Core.Catalog.SchemaCache>().FindTableAsync(p.Id, "t"))!;
        var identity = StreamIdentity.Of(new DbStudio.Core.Auth.RestCaller(p.Id, DbStudio.Core.Auth.CallerKind.Admin));
        var audience = new Audience(identity, [], "");
        var slow = new Subscription(p.Id, table, identity, audience, null, capacity: 2, startAfter: 0, leave: _ => { });
        var fine = new Subscription(p.Id, table, identity, audience, null, capacity: 8, startAfter: 0, leave: _ => { });
        for (var id = 1; id <= 3; id++)
        {
            var frame = new StreamFrame(id, new byte[] { (byte)id });
            slow.Offer(frame);
            fine.Offer(frame);
        }
        Assert.True(slow.Dropped);
        Assert.False(fine.Dropped);
        var hub = app.Service<ChangeHub>();
        var got = new List<long>();
        await foreach (var f in hub.FollowAsync(slow)) got.Add(f.Id);
        Assert.Empty(got); // it ends at once, dropped: it resumes from the log with its Last-Event-ID
        Assert.True(slow.Dropped);
        var fineGot = new List<long>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        try { await foreach (var f in hub.FollowAsync(fine, cts.Token)) fineGot.Add(f.Id); }
        catch (OperationCanceledException) { /* followed until the test stopped it */ }
        Assert.Equal([1, 2, 3], fineGot);
    }

    [Fact]
    public async Task A_client_that_stops_reading_is_dropped_with_a_last_event_while_a_reading_one_gets_everything()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "stalled");
        await TestApp.SqlAsync(owner, p.Id, "create table tasks (id serial primary key, title text)");
        await using var small = new AppFactory(app.Db.PlatformConnectionString,
            new Dictionary<string, string?> { ["DbStudio:Streams:QueueCapacity"] = "4096" });
        var url = small.StartOnLoopback();
        var hub = small.Services.GetRequiredService<ChangeHub>();

        // The stalled client: its request is answered, then nothing is read.
        using var stalledHttp = new HttpClient { BaseAddress = url, Timeout = Timeout.InfiniteTimeSpan };
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/tasks/stream");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        using var stalled = await stalledHttp.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, stalled.StatusCode);
        var path = $"/db/{p.Id}/rest/tasks/stream";
        var decode = await app.StreamIdDecoderAsync(p.Id);
        var reading = await SseClient.OpenAsync(url, path, p.ApiKey, decodeId: decode);
        Assert.Equal(2, hub.SubscriberCount);

        // 24,000 changes of 1 KB: more than the sockets' buffers and a 4,096-event backlog can hold for a client that
        // reads nothing. A client that reads gets every one, in order — on a loaded machine it too may fall behind
        // now and then, and then resumes with its Last-Event-ID as EventSource does, missing and repeating nothing.
        const int changes = 24_000;
        // In statements of 3,000 rows: each stays well inside the tests' 5 s statement limit on a loaded machine.
        var inserted = await TestApp.SqlAsync(owner, p.Id, string.Join(";\n", Enumerable.Repeat(
            "insert into tasks (title) select repeat('x', 1000) from generate_series(1, 3000)", changes / 3000)));
        foreach (var result in inserted)
            Assert.False(result.TryGetProperty("error", out var error) && error.ValueKind != System.Text.Json.JsonValueKind.Null, error.ToString());
        var got = new List<long>();
        string? lastId = null;
        var resumed = 0;
        try
        {
            while (got.Count < changes)
            {
                SseEvent e;
                try { e = await reading.NextAsync(TimeSpan.FromSeconds(60)); }
                catch (InvalidOperationException) { e = new SseEvent(null, "dropped", default); } // ended without a word
                if (e.Type == "dropped")
                {
                    await reading.DisposeAsync();
                    reading = await SseClient.OpenAsync(url, path, p.ApiKey, lastId, decode);
                    resumed++;
                    continue;
                }
                Assert.Equal("insert", e.Type);
                got.Add(e.IdNumber);
                lastId = e.Id;
            }
        }
        finally { await reading.DisposeAsync(); }
        Assert.Equal(Enumerable.Range(0, changes).Select(i => got[0] + i), got); // all, in order, none twice
        Assert.True(resumed < 20, $"the reading client had to resume {resumed} times");
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (hub.SubscriberCount > 0 && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Equal(0, hub.SubscriberCount); // the stalled one is gone (and the reading one has left)

        // Reading now: what was already on its way, then the reason, then the end.
        var text = await new StreamReader(await stalled.Content.ReadAsStreamAsync()).ReadToEndAsync();
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("event: dropped", events[^1]);
        var ids = events.Where(e => e.StartsWith("id: ")).Select(e => decode(e[4..e.IndexOf('\n')])!.Value).ToList();
        Assert.True(ids.Count < changes, $"{ids.Count} events reached the stalled client");
        Assert.Equal(Enumerable.Range(0, ids.Count).Select(i => ids[0] + i), ids); // in order, no gap before the drop
    }
}
