// Fair shares of the shared server's connections (issue 12): PostgreSQL enforces every project login's CONNECTION
// LIMIT (psql with the Connection URL cannot go past the owner's), existing projects get the limits too, and with 20
// projects each holding all they may, the platform still answers; the guard keeps slots free for it.
using System.Net;
using System.Text.Json;
using DbStudio.Core;
using DbStudio.Core.Limits;
using DbStudio.Core.Panel;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Tests.Integration;

public class ConnectionSharesTests(TestApp app)
{
    /// <summary>An Npgsql connection string for a project's Connection URL (postgresql://user:password@host:port/db).</summary>
    internal static string FromUrl(string url)
    {
        var u = new Uri(url);
        var userInfo = u.UserInfo.Split(':', 2);
        return new NpgsqlConnectionStringBuilder
        {
            Host = u.Host, Port = u.Port, Database = Uri.UnescapeDataString(u.AbsolutePath.TrimStart('/')),
            Username = Uri.UnescapeDataString(userInfo[0]), Password = Uri.UnescapeDataString(userInfo[1]),
            Pooling = false, Timeout = 30,
        }.ConnectionString;
    }

    /// <summary>Opens connections with the URL until PostgreSQL refuses one; returns those it let in and the refusal.</summary>
    internal static async Task<(List<NpgsqlConnection> Held, PostgresException Refusal)> HoldAllAsync(string connectionUrl, int atMost)
    {
        var held = new List<NpgsqlConnection>();
        var cs = FromUrl(connectionUrl);
        for (var i = 0; i <= atMost; i++)
        {
            var conn = new NpgsqlConnection(cs);
            try
            {
                await conn.OpenAsync();
                held.Add(conn);
            }
            catch (PostgresException e)
            {
                await conn.DisposeAsync();
                return (held, e);
            }
        }
        foreach (var c in held) await c.DisposeAsync();
        throw new Xunit.Sdk.XunitException($"PostgreSQL let in {held.Count} connections, more than the limit {atMost}");
    }

    private async Task<long> SessionsOfAsync(string role)
    {
        await using var conn = new NpgsqlConnection(app.Db.SuperuserConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", conn);
        cmd.Parameters.Add(new() { Value = role });
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task Psql_with_the_connection_url_cannot_open_more_than_the_owners_limit()
    {
        var limit = app.Service<IOptions<DbStudioOptions>>().Value.OwnerConnectionLimit;
        Assert.Equal(5, limit); // the default
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        var role = ProjectNaming.OwnerRole(p.Id);
        var (held, refusal) = await HoldAllAsync(p.ConnectionUrl, limit);
        try
        {
            Assert.Equal(PostgresErrorCodes.TooManyConnections, refusal.SqlState);
            Assert.Equal(limit, await SessionsOfAsync(role)); // the console's pool included, if it had one open
            var psql = await TestApp.PsqlAsync(p.ConnectionUrl, "-c", "select 1");
            Assert.NotEqual(0, psql.ExitCode);
            Assert.Contains("too many connections for role", psql.Error);

            // The console of that project says so as data (53300), not a 500.
            var r = await TestApp.SqlAsync(owner, p.Id, "select 1");
            Assert.Equal("53300", r[0].GetProperty("error").GetProperty("code").GetString());
            Assert.Contains($"{limit} connections", r[0].GetProperty("error").GetProperty("detail").GetString());
        }
        finally { foreach (var c in held) await c.DisposeAsync(); }
        // The owner cannot raise its own limit: PostgreSQL refuses (no CREATEROLE).
        var raise = await TestApp.SqlAsync(owner, p.Id, $"alter role {role} connection limit 1000");
        Assert.Equal("42501", raise[0].GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Rest_logins_have_a_limit_and_projects_made_before_the_limits_get_them_from_the_guard()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        var options = app.Service<IOptions<DbStudioOptions>>().Value;
        await TestApp.SqlAsync(owner, p.Id, "create table t (id serial primary key)");
        var http = app.Factory.CreateClient();
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/t");
        req.Headers.Authorization = new("Bearer", p.ApiKey);
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(req)).StatusCode); // the REST logins are made on first use

        string[] logins = [ProjectNaming.OwnerRole(p.Id), .. RestConnections.LoginRoles(p.Id)];
        async Task<Dictionary<string, int>> LimitsAsync()
        {
            await using var conn = new NpgsqlConnection(app.Db.SuperuserConnectionString); // pg_roles is the cluster's
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname = ANY($1)", conn);
            cmd.Parameters.Add(new() { Value = logins });
            var result = new Dictionary<string, int>();
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync()) result[r.GetString(0)] = r.GetInt32(1);
            return result;
        }
        var expected = logins.ToDictionary(l => l, l => l.EndsWith("_owner") && !l.Contains("_rest_")
            ? options.OwnerConnectionLimit : options.Rest.EffectiveLoginConnectionLimit);
        Assert.Equal(expected, await LimitsAsync());

        // A project from before the limits: its logins have none (-1). The guard (at start-up and every period) fixes that.
        await using (var su = new NpgsqlConnection(app.Db.SuperuserConnectionString))
        {
            await su.OpenAsync();
            await using var cmd = new NpgsqlCommand(string.Join(";", logins.Select(l => $"ALTER ROLE {l} CONNECTION LIMIT -1")), su);
            await cmd.ExecuteNonQueryAsync();
        }
        Assert.All((await LimitsAsync()).Values, v => Assert.Equal(-1, v));
        var guard = ActivatorUtilities.CreateInstance<ConnectionGuard>(app.Services);
        await guard.ApplyLimitsAsync();
        Assert.Equal(expected, await LimitsAsync());
    }
}

/// <summary>On a PostgreSQL of its own: 100 connections held by tenants must not disturb the rest of the suite.</summary>
[Collection(nameof(AloneCollection))]
public class TwentyProjectsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task With_twenty_projects_each_holding_their_maximum_the_platform_still_answers_and_the_guard_keeps_its_reserve()
    {
        await using var own = await OwnCluster.StartAsync("shares");
        await using var factory = new AppFactory(own.PlatformConnectionString);
        var http = factory.CreateClient();
        async Task<HttpClient> UserAsync()
        {
            var client = factory.CreateClient();
            var creds = new { email = $"u{Guid.NewGuid():N}@example.com", password = "a long enough password" };
            (await client.PostAsJsonAsync("/api/auth/register", creds)).EnsureSuccessStatusCode();
            var login = await (await client.PostAsJsonAsync("/api/auth/login", creds)).Content.ReadFromJsonAsync<JsonElement>();
            client.DefaultRequestHeaders.Authorization = new("Bearer", login.GetProperty("accessToken").GetString());
            return client;
        }
        var tenant = await UserAsync();
        var limit = factory.Services.GetRequiredService<IOptions<DbStudioOptions>>().Value.OwnerConnectionLimit;
        var projects = new List<ProjectInfo>();
        for (var i = 0; i < 20; i++) // the default quota: an account may own 20
        {
            var p = await TestApp.CreateProjectAsync(tenant, $"tenant {i}");
            Assert.All(await TestApp.SqlAsync(tenant, p.Id, "create table items (id serial primary key, n int); insert into items (n) values (1), (2)"),
                r => Assert.False(r.TryGetProperty("error", out _), r.ToString()));
            projects.Add(p);
        }
        var twentyFirst = await tenant.PostAsJsonAsync("/api/projects", new { name = "one too many" });
        Assert.Equal(HttpStatusCode.Forbidden, twentyFirst.StatusCode);

        var held = new List<NpgsqlConnection>();
        try
        {
            foreach (var p in projects)
            {
                var (mine, refusal) = await ConnectionSharesTests.HoldAllAsync(p.ConnectionUrl, limit);
                held.AddRange(mine);
                Assert.Equal(PostgresErrorCodes.TooManyConnections, refusal.SqlState);
                Assert.InRange(mine.Count, 1, limit); // the console's idle pool connections count too
            }
            output.WriteLine($"tenants hold {held.Count} connections through their Connection URLs");

            // The platform still answers: health, REST (ANON key and DB_API_KEY), the panel's data, the management API.
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
            var p0 = projects[0];
            var rest = new HttpRequestMessage(HttpMethod.Get, $"/db/{p0.Id}/rest/items?order=id");
            rest.Headers.Authorization = new("Bearer", p0.ApiKey);
            var restRes = await http.SendAsync(rest);
            Assert.Equal(HttpStatusCode.OK, restRes.StatusCode);
            Assert.Equal(2, (await restRes.Content.ReadFromJsonAsync<JsonElement>()).GetArrayLength());
            var page = await factory.Services.GetRequiredService<TableBrowser>().PageAsync(p0.Id, "items", 0);
            Assert.NotNull(page);
            Assert.NotEmpty(await factory.Services.GetRequiredService<ProjectOverview>().RowsPerTableAsync(p0.Id));
            Assert.Equal(HttpStatusCode.OK, (await tenant.GetAsync($"/api/projects/{p0.Id}")).StatusCode);
            // A saturated project's console runs on the idle connection its pool kept, or says why, as data (53300);
            // another account's project runs its console as usual.
            var saturated = await TestApp.SqlAsync(tenant, p0.Id, "select 1");
            if (saturated[0].TryGetProperty("error", out var error)) Assert.Equal("53300", error.GetProperty("code").GetString());
            else Assert.Equal(1, saturated[0].GetProperty("rows")[0][0].GetInt32());
            var other = await UserAsync();
            var fresh = await TestApp.CreateProjectAsync(other);
            Assert.Equal(42, (await TestApp.SqlAsync(other, fresh.Id, "select 42"))[0].GetProperty("rows")[0][0].GetInt32());

            // The guard: when fewer than the reserve are free, it ends the newest owner sessions (Connection URL clients first).
            var free = await FreeSlotsAsync(own);
            var guard = ActivatorUtilities.CreateInstance<ConnectionGuard>(factory.Services, Options.Create(new DbStudioOptions
            {
                Limits = new LimitsOptions { ReservedConnections = free + 10 },
            }));
            var ended = await guard.KeepReserveAsync();
            output.WriteLine($"{free} slots were free; the guard ended {ended} sessions");
            Assert.InRange(ended, 5, 15); // 10, give or take the app's own connections coming and going meanwhile
            var broken = 0;
            foreach (var c in held)
            {
                try { await using var cmd = new NpgsqlCommand("select 1", c); await cmd.ExecuteScalarAsync(); }
                catch (Exception e) when (e is NpgsqlException or InvalidOperationException) { broken++; }
            }
            Assert.Equal(ended, broken); // the ones it ended were the tenants' psql-like sessions, not the console's
            Assert.True(await FreeSlotsAsync(own) >= free + 5);
        }
        finally { foreach (var c in held) await c.DisposeAsync(); }
    }

    private static async Task<int> FreeSlotsAsync(OwnCluster own)
    {
        await using var conn = new NpgsqlConnection(own.Cluster.SuperuserConnectionString());
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("""
            SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
                   - (SELECT count(*) FROM pg_stat_activity WHERE usesysid IS NOT NULL)::int + 1
            """, conn); // + 1: this connection is the test's, not the app's
        return (int)(await cmd.ExecuteScalarAsync())!;
    }
}

/// <summary>
/// A tenant that LISTENs, keeps a transaction open and floods notifications would fill PostgreSQL's NOTIFY queue, after
/// which every NOTIFY of every project fails (review of issue 11). The guard ends such a holder once the queue fills.
/// </summary>
public class NotifyQueueGuardTests
{
    /// <summary>A new account's project on the app <paramref name="factory"/> serves (started here).</summary>
    private static async Task<ProjectInfo> ProjectAsync(AppFactory factory, string name)
    {
        factory.StartOnLoopback();
        var owner = factory.CreateClient();
        var creds = new { email = $"q{Guid.NewGuid():N}@example.com", password = "a long enough password" };
        (await owner.PostAsJsonAsync("/api/auth/register", creds)).EnsureSuccessStatusCode();
        var login = await (await owner.PostAsJsonAsync("/api/auth/login", creds)).Content.ReadFromJsonAsync<JsonElement>();
        owner.DefaultRequestHeaders.Authorization = new("Bearer", login.GetProperty("accessToken").GetString());
        return await TestApp.CreateProjectAsync(owner, name);
    }

    [Fact]
    public async Task A_session_that_holds_the_notify_queue_is_ended_when_it_fills()
    {
        await using var own = await OwnCluster.StartAsync("notifyq");
        await using var factory = new AppFactory(own.PlatformConnectionString);
        var p = await ProjectAsync(factory, "holder");

        // The holder: listens, then keeps one transaction open.
        await using var holder = new NpgsqlConnection(ConnectionSharesTests.FromUrl(p.ConnectionUrl));
        await holder.OpenAsync();
        await using (var listen = new NpgsqlCommand("LISTEN flood", holder)) await listen.ExecuteNonQueryAsync(); // (takes effect at commit)
        await using (var open = new NpgsqlCommand("BEGIN; SELECT 1;", holder)) await open.ExecuteNonQueryAsync();
        // The flood: enough to fill a few of the queue's pages, which the holder's open transaction keeps.
        await using (var flood = new NpgsqlConnection(ConnectionSharesTests.FromUrl(p.ConnectionUrl)))
        {
            await flood.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT pg_notify('flood', repeat('x', 1000) || g) FROM generate_series(1, 300) g", flood);
            await cmd.ExecuteNonQueryAsync();
        }

        var guard = ActivatorUtilities.CreateInstance<ConnectionGuard>(factory.Services, Options.Create(new DbStudioOptions
        {
            Limits = new LimitsOptions { NotifyQueueUsage = 1e-9, NotifyHolderAge = TimeSpan.Zero, ReservedConnections = 0 },
        }));
        Assert.True(await guard.KeepNotifyQueueAsync() >= 1);
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var cmd = new NpgsqlCommand("SELECT 1", holder);
            await cmd.ExecuteScalarAsync();
        });
        // Below the threshold nothing is ended.
        var calm = ActivatorUtilities.CreateInstance<ConnectionGuard>(factory.Services, Options.Create(new DbStudioOptions
        {
            Limits = new LimitsOptions { NotifyQueueUsage = 0.5, NotifyHolderAge = TimeSpan.Zero, ReservedConnections = 0 },
        }));
        Assert.Equal(0, await calm.KeepNotifyQueueAsync());
    }

    /// <summary>
    /// A listener that never reads its socket (review of session 11): PostgreSQL hands notifications out inside a
    /// transaction, so once the client's socket is full the backend waits there (ClientWrite) with the queue's tail
    /// held — an old transaction like any other, which the guard ends once the queue fills.
    /// </summary>
    [Fact]
    public async Task A_listener_that_never_reads_holds_a_transaction_and_is_ended_when_the_queue_fills()
    {
        await using var own = await OwnCluster.StartAsync("notifyr");
        await using var factory = new AppFactory(own.PlatformConnectionString);
        var p = await ProjectAsync(factory, "reader");

        // The listener: LISTEN, then nothing is ever read from its connection.
        await using var listener = new NpgsqlConnection(ConnectionSharesTests.FromUrl(p.ConnectionUrl));
        await listener.OpenAsync();
        int pid = listener.ProcessID;
        await using (var listen = new NpgsqlCommand("LISTEN flood", listener)) await listen.ExecuteNonQueryAsync();
        // More than the sockets between them hold (about 24 MB).
        await using (var flood = new NpgsqlConnection(ConnectionSharesTests.FromUrl(p.ConnectionUrl)))
        {
            await flood.OpenAsync();
            for (var i = 0; i < 4; i++)
            {
                await using var cmd = new NpgsqlCommand($"SELECT pg_notify('flood', repeat('x', 7900) || {i} || '-' || g) FROM generate_series(1, 800) g", flood);
                await cmd.ExecuteNonQueryAsync();
            }
        }

        await using var platform = new NpgsqlConnection(own.PlatformConnectionString);
        await platform.OpenAsync();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var stuck = false;
        while (!stuck && DateTime.UtcNow < deadline)
        {
            await using var cmd = new NpgsqlCommand(
                "SELECT xact_start IS NOT NULL AND wait_event = 'ClientWrite' FROM pg_stat_activity WHERE pid = $1", platform)
                { Parameters = { new() { Value = pid } } };
            stuck = await cmd.ExecuteScalarAsync() is true;
            if (!stuck) await Task.Delay(100);
        }
        Assert.True(stuck, "the listener's backend should wait on its client inside a transaction");

        var guard = ActivatorUtilities.CreateInstance<ConnectionGuard>(factory.Services, Options.Create(new DbStudioOptions
        {
            Limits = new LimitsOptions { NotifyQueueUsage = 1e-9, NotifyHolderAge = TimeSpan.Zero, ReservedConnections = 0 },
        }));
        Assert.True(await guard.KeepNotifyQueueAsync() >= 1);
        await using (var gone = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", platform) { Parameters = { new() { Value = pid } } })
        {
            var left = 1L;
            for (var i = 0; i < 100 && left > 0; i++)
            {
                left = (long)(await gone.ExecuteScalarAsync())!;
                if (left > 0) await Task.Delay(100);
            }
            Assert.Equal(0, left);
        }
    }
}
