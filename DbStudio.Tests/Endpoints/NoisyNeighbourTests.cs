// What one project can do to the service other projects get, through state PostgreSQL shares across the database.
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Tests.Infrastructure;
using static DbStudio.Tests.Infrastructure.TenantSetups;
using Npgsql;

namespace DbStudio.Tests.Endpoints;

public class NoisyNeighbourTests(TestApp app)
{
    /// <summary>
    /// Any owner can keep a snapshot open over its Connection URL (`BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;`
    /// and wait): PostgreSQL then removes no row version made after it, anywhere in the database. The capture trigger
    /// updated the writing project's row of dbstudio_realtime.streams at every captured transaction, so under such a
    /// snapshot each write left one more version nobody could remove, and each later write looked the row up (three
    /// times) through all of them: 168 pages read per lookup after 20,000 writes of another project, growing with every
    /// write for as long as the snapshot stayed. The stream row is now only locked, never rewritten, by a write.
    /// </summary>
    [Fact]
    public async Task A_snapshot_another_project_keeps_open_does_not_make_each_write_read_more_of_the_platforms_rows()
    {
        var pinner = await app.NewUserClientAsync();
        var a = await TestApp.CreateProjectAsync(pinner, "pinner");
        await using var held = new NpgsqlConnection(DbStudio.Tests.Integration.ConnectionSharesTests.FromUrl(a.ConnectionUrl));
        await held.OpenAsync();
        await using var pinned = await held.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead);
        await using (var snap = new NpgsqlCommand("SELECT 1", held, pinned)) await snap.ExecuteScalarAsync();

        var owner = await app.NewUserClientAsync();
        var b = await TestApp.CreateProjectAsync(owner, "busy writer");
        NoErrors(await TestApp.SqlAsync(owner, b.Id, "create table t (id serial primary key, v int)"));
        await app.Service<DbStudio.Core.Streams.ChangeCapture>().EnsureProjectAsync(b.Id);
        await using (var writer = new NpgsqlConnection(DbStudio.Tests.Integration.ConnectionSharesTests.FromUrl(b.ConnectionUrl)))
        {
            await writer.OpenAsync();
            // 2,000 transactions of one captured insert each.
            await using var loop = new NpgsqlCommand(
                "DO $$ BEGIN FOR i IN 1..2000 LOOP INSERT INTO t (v) VALUES (i); COMMIT; END LOOP; END $$", writer) { CommandTimeout = 600 };
            await loop.ExecuteNonQueryAsync();
        }
        var captured = await TestApp.SqlAsync(owner, b.Id, "select count(*) from t");
        Assert.Equal("2000", captured[0].GetProperty("rows")[0][0].ToString());

        // The lookup every captured transaction makes, as it makes it: pages read (a count, not a time).
        await using var platform = new NpgsqlConnection(app.Db.PlatformConnectionString);
        await platform.OpenAsync();
        await using var explain = new NpgsqlCommand(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT 1 FROM dbstudio_realtime.streams WHERE schema_name = $1 FOR UPDATE", platform);
        explain.Parameters.Add(new() { Value = DbStudio.Core.Projects.ProjectNaming.Schema(b.Id) });
        var plan = JsonDocument.Parse((string)(await explain.ExecuteScalarAsync())!).RootElement[0].GetProperty("Plan");
        var pages = plan.GetProperty("Shared Hit Blocks").GetInt64() + plan.GetProperty("Shared Read Blocks").GetInt64();
        Assert.True(plan.GetProperty("Actual Rows").GetInt64() == 1, "the project's stream row is there");
        Assert.True(pages <= 4, $"looking up the stream row read {pages} pages after 2,000 writes under another project's snapshot");
        await pinned.RollbackAsync();
    }
    /// <summary>
    /// With the stream row only locked, a REPEATABLE READ writer works its first id out in a snapshot that may miss a
    /// change committed since it began: it must fail as a serialization failure (40001, which clients retry — what the
    /// rewritten row's lock raised before), never give an id out twice or out of commit order.
    /// </summary>
    [Fact]
    public async Task A_repeatable_read_writer_whose_snapshot_missed_a_change_fails_to_serialize_and_no_id_is_given_twice()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "rr writer");
        NoErrors(await TestApp.SqlAsync(owner, p.Id, "create table t (id serial primary key, v text)"));
        await app.Service<DbStudio.Core.Streams.ChangeCapture>().EnsureProjectAsync(p.Id);
        var cs = DbStudio.Tests.Integration.ConnectionSharesTests.FromUrl(p.ConnectionUrl);
        await using var late = new NpgsqlConnection(cs);
        await using var other = new NpgsqlConnection(cs);
        await late.OpenAsync();
        await other.OpenAsync();
        async Task RunAsync(NpgsqlConnection c, string sql, NpgsqlTransaction? tx = null)
        {
            await using var cmd = new NpgsqlCommand(sql, c, tx);
            await cmd.ExecuteNonQueryAsync();
        }
        await RunAsync(other, "insert into t (v) values ('before')");
        var tx = await late.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead);
        await RunAsync(late, "select count(*) from t", tx); // its snapshot
        await RunAsync(late, "insert into t (v) values ('late')", tx); // captured at commit (a deferred trigger)
        await RunAsync(other, "insert into t (v) values ('meanwhile')"); // commits a change the snapshot does not see
        var refused = await Assert.ThrowsAsync<PostgresException>(() => tx.CommitAsync());
        Assert.Equal(PostgresErrorCodes.SerializationFailure, refused.SqlState);
        await tx.DisposeAsync();
        // Retried, it goes in; every id once, in commit order.
        await using (var retry = await late.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead))
        {
            await RunAsync(late, "insert into t (v) values ('late')", retry);
            await retry.CommitAsync();
        }
        await using var platform = new NpgsqlConnection(app.Db.PlatformConnectionString);
        await platform.OpenAsync();
        await using var log = new NpgsqlCommand(
            "SELECT string_agg(record->>'v', ',' ORDER BY id), count(*) = count(DISTINCT id) FROM dbstudio_realtime.changes WHERE schema_name = $1", platform);
        log.Parameters.Add(new() { Value = DbStudio.Core.Projects.ProjectNaming.Schema(p.Id) });
        await using var r = await log.ExecuteReaderAsync();
        Assert.True(await r.ReadAsync());
        Assert.Equal("before,meanwhile,late", r.GetString(0));
        Assert.True(r.GetBoolean(1));
    }
    /// <summary>
    /// The capture trigger found a project's newest change id by comparing the log's text column with TG_TABLE_SCHEMA, a
    /// name: no index matched, and each captured transaction read every change its project had in the log (a day's
    /// worth), so writes slowed down the more a project wrote — from 1,000 to under 300 inserts a second within 20,000.
    /// Counted in the writer's own transaction (rows the log gave up), not timed.
    /// </summary>
    [Fact]
    public async Task A_captured_write_reads_one_entry_of_the_log_however_long_it_is()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "long log");
        NoErrors(await TestApp.SqlAsync(owner, p.Id, "create table t (id serial primary key, v int)"));
        await app.Service<DbStudio.Core.Streams.ChangeCapture>().EnsureProjectAsync(p.Id);
        await using var writer = new NpgsqlConnection(DbStudio.Tests.Integration.ConnectionSharesTests.FromUrl(p.ConnectionUrl));
        await writer.OpenAsync();
        await using (var fill = new NpgsqlCommand("insert into t (v) select i from generate_series(1, 3000) i", writer))
            await fill.ExecuteNonQueryAsync();
        await using var tx = await writer.BeginTransactionAsync();
        // Captured at the statement's end rather than at commit, so that this transaction's statistics show it.
        await using (var write = new NpgsqlCommand("set constraints all immediate; insert into t (v) values (0)", writer, tx))
            await write.ExecuteNonQueryAsync();
        await using var read = new NpgsqlCommand(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_all_tables WHERE relid = 'dbstudio_realtime.changes'::regclass",
            writer, tx);
        var rows = (long)(await read.ExecuteScalarAsync())!;
        Assert.True(rows <= 2, $"one captured write read {rows} rows of the change log (3,001 changes in it)");
        await tx.CommitAsync();
    }
    /// <summary>
    /// From the availability review: the prune was one statement for every project of the server. It locked the stream
    /// row of every project with changes due — the row each of their writes locks at commit — and kept them while it
    /// deleted the largest log; a tenant can make its own log as large as it likes (its owner may insert into it), so other
    /// projects' writes waited behind it (8.8 s behind 3,000,000 rows), and past 30 s the statement failed and nobody was
    /// pruned. Here the other project's deletion is held up by a lock instead of by size (a count, not a time): a write of
    /// a project must still go through meanwhile. Each project is now pruned in transactions of its own.
    /// </summary>
    [Fact]
    public async Task The_prune_never_holds_up_a_projects_writes_while_it_deals_with_another_projects_log()
    {
        var (victimOwner, victim) = await app.AnonReadableAsync("prune victim", "create table notes (n int primary key)", "notes", anonInsert: true);
        var otherOwner = await app.NewUserClientAsync();
        var other = await TestApp.CreateProjectAsync(otherOwner, "big log");
        NoErrors(await TestApp.SqlAsync(otherOwner, other.Id, "create table t (id int primary key)"));
        var capture = app.Service<DbStudio.Core.Streams.ChangeCapture>();
        await capture.EnsureProjectAsync(victim.Id);
        await capture.EnsureProjectAsync(other.Id);
        NoErrors(await TestApp.SqlAsync(victimOwner, victim.Id, "insert into notes values (1)"));
        NoErrors(await TestApp.SqlAsync(otherOwner, other.Id, "insert into t select generate_series(1, 10)"));
        var schemas = new[] { victim.Id, other.Id }.Select(DbStudio.Core.Projects.ProjectNaming.Schema).ToArray();
        await using var platform = new NpgsqlConnection(app.Db.PlatformConnectionString);
        await platform.OpenAsync();
        await using (var age = new NpgsqlCommand(
            "UPDATE dbstudio_realtime.changes SET committed_at = now() - interval '2 days' WHERE schema_name = ANY($1)", platform))
        {
            age.Parameters.Add(new() { Value = schemas });
            Assert.Equal(11, await age.ExecuteNonQueryAsync()); // both are due, as every project active a day ago is
        }
        // The other project's deletion cannot finish while one of its changes is locked.
        await using var holder = new NpgsqlConnection(app.Db.PlatformConnectionString);
        await holder.OpenAsync();
        var held = await holder.BeginTransactionAsync();
        await using (var hold = new NpgsqlCommand(
            "SELECT 1 FROM dbstudio_realtime.changes WHERE schema_name = $1 ORDER BY id DESC LIMIT 1 FOR UPDATE", holder, held))
        {
            hold.Parameters.Add(new() { Value = schemas[1] });
            await hold.ExecuteNonQueryAsync();
        }
        var prune = Task.Run(() => app.Service<DbStudio.Core.Streams.ChangeHub>().PruneAsync());
        await using (var waiting = new NpgsqlCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = current_user AND wait_event_type = 'Lock' AND query LIKE '%dbstudio_realtime.changes%' AND pid <> pg_backend_pid()",
            platform))
            for (var deadline = DateTime.UtcNow.AddSeconds(60); (long)(await waiting.ExecuteScalarAsync())! == 0; await Task.Delay(50))
                Assert.True(DateTime.UtcNow < deadline && !prune.IsCompleted, "the prune never reached the other project's locked change");

        using var http = new HttpClient { BaseAddress = app.BaseUrl, Timeout = TimeSpan.FromSeconds(30) };
        var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{victim.Id}/rest/notes") { Content = JsonContent.Create(new { n = 2 }) };
        req.Headers.Add("apikey", victim.AnonKey);
        HttpStatusCode status;
        try { status = (await http.SendAsync(req)).StatusCode; }
        catch (TaskCanceledException) { status = HttpStatusCode.RequestTimeout; }
        await held.RollbackAsync();
        await prune;
        Assert.Equal(HttpStatusCode.Created, status);
        // Both were pruned once nothing held them up: the victim's day-old change and the other project's ten.
        await using var left = new NpgsqlCommand(
            "SELECT count(*) FROM dbstudio_realtime.changes WHERE schema_name = ANY($1) AND committed_at < now() - interval '1 day'", platform);
        left.Parameters.Add(new() { Value = schemas });
        Assert.Equal(0L, (long)(await left.ExecuteScalarAsync())!);
    }
}
