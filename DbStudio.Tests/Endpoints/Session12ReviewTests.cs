// Attacks from the review of 6274d05..f1e0352 (stream followed whole, platform lock tables, capture settings,
// whole-transaction prune, safe re-read, MaxResponseBytes).
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Core.Streams;
using DbStudio.Tests.Infrastructure;
using static DbStudio.Tests.Infrastructure.TenantSetups;
using Npgsql;

namespace DbStudio.Tests.Endpoints;

public class Session12ReviewTests(TestApp app)
{
    /// <summary>
    /// Several instances start together (a scale-out deploy): each runs PlatformLocks.EnsureAsync, whose
    /// `REVOKE ALL ON SCHEMA/TABLE … FROM PUBLIC` rewrites the same pg_namespace/pg_class rows every time, with no lock
    /// around it (it makes the lock). Two at once: "tuple concurrently updated" (XX000), which the retry does not cover,
    /// and UseDbStudioAsync throws: the instance does not start.
    /// </summary>
    [Fact]
    public async Task Instances_starting_together_each_make_the_lock_schema()
    {
        await using var ds = NpgsqlDataSource.Create(app.Db.PlatformConnectionString);
        for (var round = 0; round < 20; round++)
            await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => DbStudio.Core.Platform.PlatformLocks.EnsureAsync(ds))));
    }

    /// <summary>
    /// f1e0352: "a write asking for such an answer writes nothing (explicit transaction)" — but only a write answering JSON
    /// rows gets the explicit transaction. The same write with `Accept: text/csv` runs in the batch's implicit transaction,
    /// which commits at Sync whatever the app does with the rows: the client gets 400 DBS001 and the row is written.
    /// </summary>
    [Fact]
    public async Task A_csv_write_whose_answer_is_too_large_writes_nothing()
    {
        var (owner, p, inner) = await app.FanOutAsync("csv fanout", aliases: 1);
        using var cap = app.LowResponseCap(4 * 1024 * 1024);
        using var http = new HttpClient { BaseAddress = app.BaseUrl, Timeout = TimeSpan.FromMinutes(2) };
        var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/rest/people?select=id,teams(people(id,{inner}))")
            { Content = JsonContent.Create(new { id = 1001, team_id = 1 }) };
        req.Headers.Add("apikey", p.AnonKey);
        req.Headers.Add("Prefer", "return=representation");
        req.Headers.Add("Accept", "text/csv");
        using var res = await http.SendAsync(req);
        var body = await res.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        Assert.Contains("DBS001", body);
        var written = await TestApp.SqlAsync(owner, p.Id, "select count(*) as n from people where id = 1001");
        Assert.True(written[0].GetProperty("rows")[0][0].GetInt64() == 0, "the refused CSV write committed: " + written[0]);
    }

    /// <summary>
    /// The capture trigger locks the project's dbstudio_realtime.streams row (FOR UPDATE) at a transaction's first change
    /// and keeps it until the end of the transaction — a transaction its project's owner can keep open as long as it
    /// likes (Connection URL). The prune is one UPDATE of every pruned project's streams row: it waits for that tenant,
    /// holding the rows it has already updated — so the first write of every other such project waits behind it, and the
    /// log is pruned for nobody.
    /// </summary>
    [Fact]
    public async Task A_tenant_keeping_a_write_open_neither_stalls_the_prune_nor_other_projects_writes()
    {
        var projects = new List<(HttpClient Owner, ProjectInfo P)>();
        for (var i = 0; i < 9; i++)
            projects.Add(await app.AnonReadableAsync($"prune {i}", "create table notes (n int primary key, secret text)", "notes", anonInsert: true));
        foreach (var (owner, p) in projects)
        {
            await app.Service<ChangeCapture>().EnsureProjectAsync(p.Id);
            NoErrors(await TestApp.SqlAsync(owner, p.Id, "insert into notes values (1, 'old')"));
        }
        // Their changes are past the retention (as after a day).
        await using (var conn = new NpgsqlConnection(app.Db.PlatformConnectionString))
        {
            await conn.OpenAsync();
            await using var age = new NpgsqlCommand(
                "UPDATE dbstudio_realtime.changes SET committed_at = now() - interval '2 days' WHERE schema_name = ANY($1)", conn);
            age.Parameters.Add(new() { Value = projects.Select(x => ProjectNaming.Schema(x.P.Id)).ToArray() });
            Assert.Equal(9, await age.ExecuteNonQueryAsync());
        }
        // Each project is a tenant keeping a write open in turn; the others must still write and be pruned.
        var attacker = projects[0].P;
        // (A committed write just before: its streams row's visible version is the newest, so the prune comes to it last.)
        NoErrors(await TestApp.SqlAsync(projects[0].Owner, attacker.Id, "insert into notes values (5, 'fresh')"));
        await using var held = new NpgsqlConnection(DbStudio.Tests.Integration.ConnectionSharesTests.FromUrl(attacker.ConnectionUrl));
        await held.OpenAsync();
        await using var tx = await held.BeginTransactionAsync();
        await using (var write = new NpgsqlCommand("set constraints all immediate; insert into notes values (2, 'held')", held, tx)) await write.ExecuteNonQueryAsync();

        var prune = Task.Run(() => app.Service<ChangeHub>().PruneAsync());
        await Task.Delay(TimeSpan.FromSeconds(2));
        using var http = new HttpClient { BaseAddress = app.BaseUrl, Timeout = TimeSpan.FromSeconds(60) };
        var slow = new List<string>();
        foreach (var (_, p) in projects.Skip(1))
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/rest/notes") { Content = JsonContent.Create(new { n = 3, secret = "x" }) };
            req.Headers.Add("apikey", p.AnonKey);
            var res = await http.SendAsync(req);
            // (Well under Npgsql's 30 s command timeout, which is what a write queued behind the stalled prune waited.)
            if (sw.Elapsed > TimeSpan.FromSeconds(20) || res.StatusCode != HttpStatusCode.Created)
                slow.Add($"{p.Id}: {(int)res.StatusCode} after {sw.Elapsed.TotalSeconds:0.0} s");
        }
        // The prune ends while the tenant still holds its write (stalled, it failed at the 30 s command timeout).
        await Task.WhenAny(prune, Task.Delay(TimeSpan.FromSeconds(25)));
        var pruneDone = prune.IsCompletedSuccessfully;
        await tx.RollbackAsync();
        try { await prune; } catch { /* reported below */ }
        Assert.True(pruneDone && slow.Count == 0,
            $"while one tenant kept a write open: prune finished: {pruneDone}; other projects' writes: [{string.Join("; ", slow)}]");
    }

    /// <summary>
    /// Any project owner may GRANT on its own tables to any role — another project's REST login included. That grant is a
    /// shared dependency: (a) kept in an open transaction it holds a lock on the role, so the other project's deletion
    /// (ProjectProvisioner.DropAsync) waits in DROP ROLE while it holds dbstudio_locks.rest_logins — every project's first
    /// REST request (ProjectLogins.EnsureAsync) waits behind it; (b) committed, DROP ROLE fails ("some objects depend on
    /// it"): DropAsync clears grants to the project's NOLOGIN roles (DROP OWNED) but not to its logins, so the victim can
    /// never delete its project.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)] // its anon role
    public async Task A_grant_from_another_project_to_a_projects_rest_login_does_not_block_its_deletion(bool toLogin)
    {
        var attackerOwner = await app.NewUserClientAsync();
        var y = await TestApp.CreateProjectAsync(attackerOwner, "granter");
        NoErrors(await TestApp.SqlAsync(attackerOwner, y.Id, "create table bait (n int)"));
        var victimOwner = await app.NewUserClientAsync();
        var x = await TestApp.CreateProjectAsync(victimOwner, "victim");
        NoErrors(await TestApp.SqlAsync(victimOwner, x.Id, "create table t (id int primary key)"));
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var first = new HttpRequestMessage(HttpMethod.Get, $"/db/{x.Id}/rest/t"); // makes x's REST logins
        first.Headers.Add("apikey", x.ApiKey);
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(first)).StatusCode);

        NoErrors(await TestApp.SqlAsync(attackerOwner, y.Id, $"grant select on bait to {(toLogin ? ProjectLogins.LoginRole(x.Id, RestRole.Anon) : ProjectNaming.AnonRole(x.Id))}"));
        var res = await victimOwner.DeleteAsync($"/api/projects/{x.Id}");
        Assert.True(res.StatusCode == HttpStatusCode.NoContent,
            $"deleting project {x.Id}: {(int)res.StatusCode}\n" + string.Join("\n", app.Factory.Errors.Where(e => e.Contains(x.Id)).Select(e => e[..Math.Min(e.Length, 3000)])));
        // The platform kept no membership in the granting project's owner (it had one for the deleting transaction only).
        await using var platform = new NpgsqlConnection(app.Db.PlatformConnectionString);
        await platform.OpenAsync();
        await using var member = new NpgsqlCommand($"SELECT pg_has_role(current_user, '{ProjectNaming.OwnerRole(y.Id)}', 'MEMBER')", platform);
        Assert.Equal(false, await member.ExecuteScalarAsync());
    }

    /// <summary>
    /// `Prefer: tx=rollback` is honoured by REST writes (RestExecutor rolls its explicit transaction back) but an RPC
    /// write — now always in an explicit transaction (f1e0352) — commits regardless, and Preference-Applied does not say
    /// it was ignored either way.
    /// </summary>
    [Fact]
    public async Task An_rpc_write_asked_to_roll_back_writes_nothing()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "rpc rollback");
        NoErrors(await TestApp.SqlAsync(owner, p.Id, """
            create table hits (n int);
            create function hit() returns int language sql as $$ insert into hits values (1) returning n $$;
            """));
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/rest/rpc/hit") { Content = JsonContent.Create(new { }) };
        req.Headers.Add("apikey", p.ApiKey);
        req.Headers.Add("Prefer", "tx=rollback");
        using var res = await http.SendAsync(req);
        var applied = res.Headers.TryGetValues("Preference-Applied", out var v) ? string.Join(",", v) : "";
        Assert.True(res.IsSuccessStatusCode, await res.Content.ReadAsStringAsync());
        var rows = await TestApp.SqlAsync(owner, p.Id, "select count(*) as n from hits");
        Assert.True(rows[0].ToString().Contains("[[0]]"), $"Preference-Applied: '{applied}'; hits after tx=rollback: " + rows[0]);
    }
}
