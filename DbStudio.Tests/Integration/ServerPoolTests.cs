// Several PostgreSQL servers (issue 17), on two local clusters of this class's own: the platform database on the first
// ("main"), a second server "b" in DbStudio:Servers. New projects are placed on both; for a project on each, REST, the
// console, the stream (across two app instances), the Connection URL, key rotation, the owner password and deletion
// work the same, with the project's roles, schema, logins and change log on its own server only.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace DbStudio.Tests.Integration;

/// <summary>Two clusters and two app instances configured with both servers (placement by project count).</summary>
public sealed class TwoServers : IAsyncLifetime
{
    public OwnCluster A { get; private set; } = null!;
    public OwnCluster B { get; private set; } = null!;
    public AppFactory App { get; private set; } = null!;
    public AppFactory Second { get; private set; } = null!;
    public Uri BaseUrl { get; private set; } = null!;
    public Uri SecondUrl { get; private set; } = null!;

    /// <summary>DbStudio:Servers for the app instances: "b" beside "main", and more settings on top.</summary>
    public Dictionary<string, string?> Settings(params (string Key, string Value)[] more)
    {
        var s = new Dictionary<string, string?> { ["DbStudio:Servers:Pool:b:ConnectionString"] = B.PlatformConnectionString };
        foreach (var (k, v) in more) s[k] = v;
        return s;
    }

    public async ValueTask InitializeAsync()
    {
        var clusters = await Task.WhenAll(OwnCluster.StartAsync("srv-a"), OwnCluster.StartAsync("srv-b"));
        (A, B) = (clusters[0], clusters[1]);
        App = new AppFactory(A.PlatformConnectionString, Settings());
        BaseUrl = App.StartOnLoopback();
        Second = new AppFactory(A.PlatformConnectionString, Settings());
        SecondUrl = Second.StartOnLoopback();
    }

    public async ValueTask DisposeAsync()
    {
        await Second.DisposeAsync();
        await App.DisposeAsync();
        await B.DisposeAsync();
        await A.DisposeAsync();
    }

    public OwnCluster Cluster(string server) => server == "main" ? A : B;
    public OwnCluster Other(string server) => server == "main" ? B : A;

    /// <summary>A one-value query as the cluster's superuser.</summary>
    public static async Task<T> ScalarAsync<T>(OwnCluster cluster, string sql, params object[] args)
    {
        await using var conn = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(cluster.Cluster.SuperuserConnectionString("dbstudio"))
            { Pooling = false }.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args) cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>Waits (up to 15 s) until <paramref name="condition"/> holds.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not come true within 15 s");
            await Task.Delay(50);
        }
    }

    /// <summary>Which server platform metadata places a project on.</summary>
    public Task<string> ServerOfAsync(string projectId) =>
        ScalarAsync<string>(A, """SELECT "Server" FROM platform.projects WHERE "Id" = $1""", projectId);

    public async Task<HttpClient> NewUserClientAsync(Uri? baseUrl = null)
    {
        var client = new HttpClient { BaseAddress = baseUrl ?? BaseUrl };
        var creds = new { email = $"s{Guid.NewGuid():N}@example.com", password = "a long enough password" };
        (await client.PostAsJsonAsync("/api/auth/register", creds)).EnsureSuccessStatusCode();
        var login = await (await client.PostAsJsonAsync("/api/auth/login", creds)).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<JsonElement>();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", login.GetProperty("accessToken").GetString());
        return client;
    }

    /// <summary>
    /// A new project on <paramref name="server"/>: placement by project count alternates between the two servers, so one
    /// of the first few lands there (the others are deleted).
    /// </summary>
    public async Task<ProjectInfo> ProjectOnAsync(HttpClient owner, string server)
    {
        for (var i = 0; i < 4; i++)
        {
            var p = await TestApp.CreateProjectAsync(owner, "on " + server);
            if (await ServerOfAsync(p.Id) == server) return p;
            (await owner.DeleteAsync($"/api/projects/{p.Id}")).EnsureSuccessStatusCode();
        }
        throw new InvalidOperationException($"no project was placed on {server}");
    }
}

public class ServerPoolTests(TwoServers s) : IClassFixture<TwoServers>
{
    [Fact]
    public async Task New_projects_go_to_both_servers_with_their_roles_and_schema_there_and_metadata_on_the_first()
    {
        var owner = await s.NewUserClientAsync();
        var projects = new List<ProjectInfo>();
        for (var i = 0; i < 4; i++) projects.Add(await TestApp.CreateProjectAsync(owner, $"spread {i}"));
        var placed = new List<string>();
        foreach (var p in projects) placed.Add(await s.ServerOfAsync(p.Id));
        // By project count, both get some (the other tests of the class make and delete projects too: the exact split
        // depends on what they left).
        Assert.Contains("main", placed);
        Assert.Contains("b", placed);

        foreach (var (p, server) in projects.Zip(placed))
        {
            var here = s.Cluster(server);
            var other = s.Other(server);
            Assert.True(await TwoServers.ScalarAsync<bool>(here, "SELECT to_regnamespace($1) IS NOT NULL", p.Schema));
            Assert.False(await TwoServers.ScalarAsync<bool>(other, "SELECT to_regnamespace($1) IS NOT NULL", p.Schema));
            Assert.Equal(1L, await TwoServers.ScalarAsync<long>(here, "SELECT count(*) FROM pg_roles WHERE rolname = $1", ProjectNaming.OwnerRole(p.Id)));
            Assert.Equal(0L, await TwoServers.ScalarAsync<long>(other, "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", $"proj\\_{p.Id}\\_%"));
            // The Connection URL names the project's server, and psql reaches the project there.
            Assert.Contains($"@127.0.0.1:{here.Cluster.Port}/dbstudio", p.ConnectionUrl);
            var (exit, output, error) = await TestApp.PsqlAsync(p.ConnectionUrl, "-tAc", "select current_schema() || ' ' || inet_server_port()");
            Assert.True(exit == 0, error);
            Assert.Equal($"{p.Schema} {here.Cluster.Port}", output.Trim());
        }
        // Platform metadata lives on the first server only; the second has the change log (its projects' captures write it).
        Assert.False(await TwoServers.ScalarAsync<bool>(s.B, "SELECT to_regnamespace('platform') IS NOT NULL"));
        Assert.True(await TwoServers.ScalarAsync<bool>(s.B, "SELECT to_regnamespace('dbstudio_realtime') IS NOT NULL"));
        // Both have the log's row-security function as the latest migration left it: an SQL-standard body, no SET clause
        // (so PostgreSQL inlines it into every captured write's checks), whichever instance made the schema first.
        foreach (var c in new[] { s.A, s.B })
            Assert.True(await TwoServers.ScalarAsync<bool>(c,
                "SELECT prosqlbody IS NOT NULL AND proconfig IS NULL FROM pg_proc WHERE oid = 'dbstudio_realtime.caller_schema()'::regprocedure"));
        // ... and the capture trigger writes images under the same output settings on both (CaptureSettings).
        foreach (var c in new[] { s.A, s.B })
            Assert.True(await TwoServers.ScalarAsync<bool>(c,
                "SELECT proconfig @> '{TimeZone=UTC,IntervalStyle=postgres,extra_float_digits=1}' FROM pg_proc WHERE oid = 'dbstudio_realtime.capture()'::regprocedure"));
        // The platform role holds no membership in any project role on either server (DESIGN §2).
        foreach (var c in new[] { s.A, s.B })
            Assert.Equal(0L, await TwoServers.ScalarAsync<long>(c, """
                SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
                WHERE u.rolname = 'dbstudio' AND r.rolname LIKE 'proj\_%'
                """));
    }

    [Theory]
    [InlineData("main")]
    [InlineData("b")]
    public async Task Rest_console_stream_and_connection_url_work_for_a_project_on_either_server(string server)
    {
        var owner = await s.NewUserClientAsync();
        var p = await s.ProjectOnAsync(owner, server);
        var r = await TestApp.SqlAsync(owner, p.Id, "create table items (id serial primary key, title text, user_id uuid)");
        Assert.False(r[0].TryGetProperty("error", out var e), e.ToString());
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/items/access", new
        {
            anon_select = true, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true,
            auth_delete_own = true, user_id_col = "user_id",
        })).EnsureSuccessStatusCode();

        // The stream is followed on the second instance; the writes go through the first, the console and psql.
        var decoder = await StreamDecoderAsync(p.Id);
        await using var stream = await SseClient.OpenAsync(s.SecondUrl, $"/db/{p.Id}/rest/items/stream?apikey={p.AnonKey}", decodeId: decoder);
        Assert.Equal(HttpStatusCode.OK, stream.Response.StatusCode);

        using var rest = new HttpClient { BaseAddress = s.BaseUrl };
        var post = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/rest/items") { Content = JsonContent.Create(new { title = "over rest" }) };
        post.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        post.Headers.Add("Prefer", "return=representation");
        var created = await rest.SendAsync(post);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var ev = await stream.NextAsync();
        Assert.Equal("insert", ev.Type);
        Assert.Equal("over rest", ev.RecordText("title"));

        await TestApp.SqlAsync(owner, p.Id, "insert into items (title) values ('from the console')");
        Assert.Equal("from the console", (await stream.NextAsync()).RecordText("title"));
        var (exit, _, error) = await TestApp.PsqlAsync(p.ConnectionUrl, "-v", "ON_ERROR_STOP=1", "-c", "insert into items (title) values ('from psql')");
        Assert.True(exit == 0, error);
        Assert.Equal("from psql", (await stream.NextAsync()).RecordText("title"));

        // Anonymous GET on the second instance sees the three rows, through the project's logins on its server.
        var get = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/items?select=title&order=id");
        get.Headers.Add("apikey", p.AnonKey);
        using var second = new HttpClient { BaseAddress = s.SecondUrl };
        var rows = await (await second.SendAsync(get)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(["over rest", "from the console", "from psql"], rows.EnumerateArray().Select(x => x.GetProperty("title").GetString()));
        // The project's REST logins exist on its server only.
        var logins = RestConnections.LoginRoles(p.Id).ToArray();
        Assert.Equal(logins.Length, await TwoServers.ScalarAsync<long>(s.Cluster(server), "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)", [logins]));
        Assert.Equal(0L, await TwoServers.ScalarAsync<long>(s.Other(server), "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", $"proj\\_{p.Id}\\_%"));
        // Its connections are in its server's pool (each server has a budget of its own).
        var servers = s.App.Services.GetRequiredService<DbStudio.Core.Platform.ProjectServers>();
        var pools = s.App.Services.GetRequiredService<ServerPools>();
        Assert.NotSame(pools.For(servers.Named("main")), pools.For(servers.Named("b")));
        Assert.True(pools.For(servers.Named(server)).OpenCount > 0);
        // Its changes are in its server's log.
        Assert.Equal(3L, await TwoServers.ScalarAsync<long>(s.Cluster(server),
            "SELECT count(*) FROM dbstudio_realtime.changes WHERE schema_name = $1", p.Schema));
        // The panel's overview counts its rows on its own login, on its server.
        var overview = await s.App.Services.GetRequiredService<DbStudio.Core.Panel.ProjectOverview>().RowsPerTableAsync(p.Id, TestContext.Current.CancellationToken);
        Assert.Equal(3L, Assert.Single(overview).Rows);
    }

    [Fact]
    public async Task Key_rotation_owner_password_and_deletion_work_for_a_project_on_the_second_server()
    {
        var owner = await s.NewUserClientAsync();
        var p = await s.ProjectOnAsync(owner, "b");
        await TestApp.SqlAsync(owner, p.Id, "create table t (id int primary key)");
        using var http = new HttpClient { BaseAddress = s.BaseUrl };
        async Task<HttpStatusCode> Probe(string key)
        {
            var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/t");
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return (await http.SendAsync(req)).StatusCode;
        }
        Assert.Equal(HttpStatusCode.OK, await Probe(p.ApiKey));
        var rotated = await (await owner.PostAsync($"/api/projects/{p.Id}/keys/api/rotate", null)).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<ProjectInfo>();
        Assert.Equal(HttpStatusCode.Unauthorized, await Probe(p.ApiKey));
        Assert.Equal(HttpStatusCode.OK, await Probe(rotated!.ApiKey));

        var reset = await (await owner.PostAsync($"/api/projects/{p.Id}/owner/reset-password", null)).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<ProjectInfo>();
        Assert.NotEqual(p.ConnectionUrl, reset!.ConnectionUrl);
        Assert.NotEqual(0, (await TestApp.PsqlAsync(p.ConnectionUrl, "-c", "select 1")).ExitCode);
        var (exit, _, error) = await TestApp.PsqlAsync(reset.ConnectionUrl, "-c", "select 1");
        Assert.True(exit == 0, error);
        // The console reconnects with the new password.
        var after = await TestApp.SqlAsync(owner, p.Id, "select count(*) from t");
        Assert.False(after[0].TryGetProperty("error", out var e), e.ToString());

        (await owner.DeleteAsync($"/api/projects/{p.Id}")).EnsureSuccessStatusCode();
        Assert.False(await TwoServers.ScalarAsync<bool>(s.B, "SELECT to_regnamespace($1) IS NOT NULL", p.Schema));
        Assert.Equal(0L, await TwoServers.ScalarAsync<long>(s.B, "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", $"proj\\_{p.Id}\\_%"));
        // Its change log goes too (each instance drops it as the deletion's signal arrives).
        await TwoServers.UntilAsync(async () => await TwoServers.ScalarAsync<long>(s.B,
            "SELECT count(*) FROM dbstudio_realtime.streams WHERE schema_name = $1", p.Schema) == 0);
        Assert.Equal(HttpStatusCode.Unauthorized, await Probe(rotated.ApiKey));
    }

    [Fact]
    public async Task A_project_moves_to_the_other_server_under_writes_losing_no_acknowledged_write_and_its_stream_resumes()
    {
        var owner = await s.NewUserClientAsync();
        var p = await s.ProjectOnAsync(owner, "main");
        var r = await TestApp.SqlAsync(owner, p.Id, "create table items (id bigserial primary key, n int not null unique);" +
                                                     "create table quiet (id serial primary key, v text); insert into quiet (v) values ('a'), ('b')");
        Assert.All(r, x => Assert.False(x.TryGetProperty("error", out var e), e.ToString()));
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/quiet/access", new
        {
            anon_select = true, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true,
            auth_delete_own = true, user_id_col = (string?)null,
        })).EnsureSuccessStatusCode();

        using var stop = new CancellationTokenSource(); // the follower
        using var stopWriters = new CancellationTokenSource();
        var acknowledged = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        var streamed = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        var refused = 0;
        var reconnects = 0;
        var ends = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var next = 0;
        async Task Writer(Uri baseUrl)
        {
            using var http = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(60) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
            while (!stopWriters.IsCancellationRequested)
            {
                var n = Interlocked.Increment(ref next);
                var res = await http.PostAsJsonAsync($"/db/{p.Id}/rest/items", new { n });
                if (res.StatusCode == HttpStatusCode.Created) acknowledged[n] = true;
                else
                {
                    // Only a retryable refusal is allowed while the project moves; it acknowledges nothing.
                    Assert.True(res.StatusCode == HttpStatusCode.ServiceUnavailable, $"a write failed with {(int)res.StatusCode}: {await res.Content.ReadAsStringAsync()}");
                    Interlocked.Increment(ref refused);
                }
                await Task.Delay(10); // a light load
            }
        }
        var following = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task Follower()
        {
            string? last = null;
            while (!stop.IsCancellationRequested)
            {
                await using (var sse = await SseClient.OpenAsync(s.SecondUrl, $"/db/{p.Id}/rest/items/stream", p.ApiKey, last))
                {
                    if (!sse.Response.IsSuccessStatusCode) Assert.Fail(await sse.Response.Content.ReadAsStringAsync());
                    following.TrySetResult();
                    while (!stop.IsCancellationRequested)
                    {
                        SseEvent e;
                        try { e = await sse.NextAsync(TimeSpan.FromSeconds(1)); }
                        catch (TimeoutException) { continue; }
                        catch (InvalidOperationException) { break; } // the stream ended: resume, as EventSource does
                        if (!string.IsNullOrEmpty(e.Id)) last = e.Id;
                        if (e.Type is "dropped" or "revoked") ends.Enqueue(e.Type);
                        if (e.Type == "insert") streamed.AddOrUpdate(e.Data.GetProperty("record").GetProperty("n").GetInt32(), 1, (_, c) => c + 1);
                    }
                }
                Interlocked.Increment(ref reconnects);
            }
        }
        var follower = Task.Run(Follower);
        await Task.WhenAny(following.Task, follower).WaitAsync(TimeSpan.FromSeconds(30));
        if (follower.IsFaulted) await follower; // its failure, as it is
        var writers = new[] { Task.Run(() => Writer(s.BaseUrl)), Task.Run(() => Writer(s.SecondUrl)) };
        await TwoServers.UntilAsync(async () =>
        {
            if (writers.FirstOrDefault(w => w.IsFaulted) is { } failed) await failed;
            return acknowledged.Count >= 30;
        });

        var moved = await owner.PostAsJsonAsync($"/api/projects/{p.Id}/move", new { server = "b" });
        Assert.True(moved.IsSuccessStatusCode, await moved.Content.ReadAsStringAsync() + " " + string.Join(" | ", s.App.Errors.Take(3)));
        var report = await moved.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("b", report.GetProperty("to").GetString());
        Assert.Equal(2, report.GetProperty("rows").GetProperty("quiet").GetInt64());
        Assert.True(report.GetProperty("oldCopyDropped").GetBoolean());
        var atMove = acknowledged.Count;
        // writes go on, on the new server (a writer that failed says why rather than leaving the count short)
        await TwoServers.UntilAsync(async () =>
        {
            if (writers.FirstOrDefault(w => w.IsFaulted) is { } failed) await failed;
            return acknowledged.Count >= atMove + 30;
        });
        await stopWriters.CancelAsync();
        await Task.WhenAll(writers);

        Assert.Equal("b", await s.ServerOfAsync(p.Id));
        Assert.False(await TwoServers.ScalarAsync<bool>(s.A, "SELECT to_regnamespace($1) IS NOT NULL", p.Schema)); // the old copy is gone
        Assert.Equal(0L, await TwoServers.ScalarAsync<long>(s.A, "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", $"proj\\_{p.Id}\\_%"));
        var after = (await owner.GetFromJsonAsync<ProjectInfo>($"/api/projects/{p.Id}"))!;
        Assert.Contains($"@127.0.0.1:{s.B.Cluster.Port}/", after.ConnectionUrl);
        var (exit, output, error) = await TestApp.PsqlAsync(after.ConnectionUrl, "-tAc", "select string_agg(v, ',' order by id) from quiet");
        Assert.True(exit == 0, error);
        Assert.Equal("a,b", output.Trim());
        // The access settings followed the tables (new OIDs): anonymous reads of "quiet" are still allowed.
        var access = await owner.GetFromJsonAsync<JsonElement>($"/api/projects/{p.Id}/tables/quiet/access");
        Assert.True(access.GetProperty("anon_select").GetBoolean());
        var anon = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/quiet?select=v&order=id");
        anon.Headers.Add("apikey", p.AnonKey);
        Assert.Equal(2, (await (await new HttpClient { BaseAddress = s.SecondUrl }.SendAsync(anon)).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<JsonElement>()).GetArrayLength());

        // Every acknowledged write is on the new server, and the sequence goes on past the copied rows.
        using var http = new HttpClient { BaseAddress = s.BaseUrl };
        var get = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/items?select=id,n&order=id");
        get.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        var rows = (await (await http.SendAsync(get)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray().ToList();
        var present = rows.Select(x => x.GetProperty("n").GetInt32()).ToHashSet();
        var missing = acknowledged.Keys.Where(n => !present.Contains(n)).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged writes missing, e.g. {string.Join(", ", missing.Take(5))}");
        Assert.Equal(rows.Count, rows.Select(x => x.GetProperty("id").GetInt64()).Distinct().Count());

        // The stream resumed with Last-Event-ID on the new server: every acknowledged row arrived, once.
        await TwoServers.UntilAsync(() => Task.FromResult(acknowledged.Keys.All(streamed.ContainsKey)));
        Assert.DoesNotContain(streamed, kv => kv.Value > 1);
        Assert.True(reconnects >= 1, "the stream never ended at the move");
        Assert.Equal(["dropped"], ends); // to be resumed, not a credential that stopped
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"acknowledged {acknowledged.Count}, refused {refused}, reconnects {reconnects}, paused {report.GetProperty("paused")}");
        await stop.CancelAsync();
        await follower.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_move_that_cannot_be_made_is_given_up_and_the_project_goes_on_where_it_was()
    {
        var owner = await s.NewUserClientAsync();
        var p = await s.ProjectOnAsync(owner, "main");
        var neighbour = await s.ProjectOnAsync(owner, "main");
        // A grant to another project's role: that role is not on the other server, so the restore fails there.
        var r = await TestApp.SqlAsync(owner, p.Id, $"create table items (id serial primary key, v text); insert into items (v) values ('kept');" +
                                                     $"grant select on items to proj_{neighbour.Id}_anon");
        Assert.All(r, x => Assert.False(x.TryGetProperty("error", out var e), e.ToString()));

        var moved = await owner.PostAsJsonAsync($"/api/projects/{p.Id}/move", new { server = "b" });
        Assert.Equal(HttpStatusCode.Conflict, moved.StatusCode);
        Assert.Contains("given up", await moved.Content.ReadAsStringAsync());

        Assert.Equal("main", await s.ServerOfAsync(p.Id));
        Assert.Null(await TwoServers.ScalarAsync<object>(s.A, """SELECT "MovingTo" FROM platform.projects WHERE "Id" = $1""", p.Id) as string);
        Assert.Equal(0L, await TwoServers.ScalarAsync<long>(s.B, "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", $"proj\\_{p.Id}\\_%"));
        Assert.False(await TwoServers.ScalarAsync<bool>(s.B, "SELECT to_regnamespace($1) IS NOT NULL", p.Schema));
        // Its logins are open again: REST, the console and the Connection URL work on the first server.
        using var http = new HttpClient { BaseAddress = s.BaseUrl };
        var post = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/rest/items") { Content = JsonContent.Create(new { v = "after" }) };
        post.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        Assert.Equal(HttpStatusCode.Created, (await http.SendAsync(post)).StatusCode);
        var (exit, output, error) = await TestApp.PsqlAsync(p.ConnectionUrl, "-tAc", "select string_agg(v, ',' order by id) from items");
        Assert.True(exit == 0, error);
        Assert.Equal("kept,after", output.Trim());
    }

    [Fact]
    public async Task Placement_by_free_connections_picks_the_server_with_more_slots_free()
    {
        await using var app = new AppFactory(s.A.PlatformConnectionString, s.Settings(("DbStudio:Servers:Placement", "FreeConnections")));
        var owner = await s.NewUserClientAsync(app.StartOnLoopback());
        // 100 sessions held on one server, then on the other: each time the new project goes to the other one.
        foreach (var (busy, expected) in new[] { (s.B, "main"), (s.A, "b") })
        {
            var held = new List<NpgsqlConnection>();
            try
            {
                for (var i = 0; i < 100; i++)
                {
                    var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(busy.Cluster.SuperuserConnectionString()) { Pooling = false }.ConnectionString);
                    held.Add(c);
                    await c.OpenAsync();
                }
                var p = await TestApp.CreateProjectAsync(owner, "free slots");
                Assert.Equal(expected, await s.ServerOfAsync(p.Id));
            }
            finally
            {
                foreach (var c in held) await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_project_moved_there_and_back_resumes_a_stream_id_given_out_before_both_moves()
    {
        var owner = await s.NewUserClientAsync();
        var p = await s.ProjectOnAsync(owner, "main");
        await TestApp.SqlAsync(owner, p.Id, "create table t (id serial primary key, v text); insert into t (v) values ('one')");
        string lastId;
        await using (var sse = await SseClient.OpenAsync(s.BaseUrl, $"/db/{p.Id}/rest/t/stream", p.ApiKey))
        {
            Assert.Equal(HttpStatusCode.OK, sse.Response.StatusCode);
            await TestApp.SqlAsync(owner, p.Id, "insert into t (v) values ('two')");
            var two = await sse.NextAsync();
            Assert.Equal("two", two.RecordText("v"));
            lastId = two.Id!;
        }
        foreach (var to in new[] { "b", "main" })
        {
            var moved = await owner.PostAsJsonAsync($"/api/projects/{p.Id}/move", new { server = to });
            Assert.True(moved.IsSuccessStatusCode, await moved.Content.ReadAsStringAsync());
            Assert.Equal(to, await s.ServerOfAsync(p.Id));
        }
        await TestApp.SqlAsync(owner, p.Id, "insert into t (v) values ('three')");
        // The id names the table's first OID; the table has had two others since.
        await using var resumed = await SseClient.OpenAsync(s.SecondUrl, $"/db/{p.Id}/rest/t/stream", p.ApiKey, lastId);
        Assert.Equal(HttpStatusCode.OK, resumed.Response.StatusCode);
        Assert.Equal("three", (await resumed.NextAsync()).RecordText("v"));
        await TestApp.SqlAsync(owner, p.Id, "insert into t (v) values ('four')");
        Assert.Equal("four", (await resumed.NextAsync()).RecordText("v"));
    }

    private async Task<Func<string, long?>> StreamDecoderAsync(string projectId)
    {
        var key = await s.App.Services.GetRequiredService<DbStudio.Core.Streams.StreamIds>().KeyAsync(projectId, CancellationToken.None);
        return id => DbStudio.Core.Streams.StreamIds.ChangeOf(key, id);
    }
}
