// Attacks from the review of 6274d05 (a transaction larger than one read of the log, followed whole): what would still
// show a row version no GET ever returned, lose a committed one, or make the platform pay again and again for one
// tenant's transaction.
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Core.Streams;
using DbStudio.Tests.Infrastructure;
using static DbStudio.Tests.Infrastructure.TenantSetups;

namespace DbStudio.Tests.Endpoints;

public class BigTransactionReviewTests(TestApp app)
{
    /// <summary>
    /// A table without a primary key holding identical rows: a row is followed by its image, and two rows with the same
    /// image share one entry of the "open chains" map (ChangeNetting.NetTransaction and ChangeLog.FollowAsync alike), so
    /// the second overwrites the first: the first row's chain can no longer be continued, its in-transaction version is
    /// shown, and the later change that should have continued it starts a chain of its own whose old image is that
    /// version. Small transaction (netted in one read) and large one (followed whole).
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(1100)]
    public async Task Identical_rows_without_primary_key_show_only_what_committed(int rows)
    {
        var (owner, p) = await app.AnonReadableAsync($"dup rows {rows}", "create table notes (n int, secret text)", "notes");
        await using var notes = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/notes/stream?apikey={p.AnonKey}");
        Assert.Equal(HttpStatusCode.OK, notes.Response.StatusCode);
        NoErrors(await TestApp.SqlAsync(owner, p.Id, $$"""
            do $$ begin
              insert into notes select 1, 'SECRET' from generate_series(1, {{rows}});
              update notes set secret = 'redacted';
            end $$;
            insert into notes values (0, 'marker');
            """));
        var seen = await UpToMarkerAsync(notes, "secret", "marker");
        var all = string.Join("\n", seen.Select(e => e.Data.GetRawText()));
        Assert.False(all.Contains("SECRET"), "anon stream events:\n" + all[..Math.Min(all.Length, 3000)]);
        Assert.Equal(rows + 1, seen.Count);
    }

    /// <summary>
    /// A row is followed by the text of its image (to_jsonb), and that text depends on the writer's session settings:
    /// timestamptz is written in the session's TimeZone (also: extra_float_digits for floats, IntervalStyle, bytea_output).
    /// A capture that fires at the statement (SET CONSTRAINTS ... IMMEDIATE, which the leak tests use as a writer's
    /// legitimate choice) under another TimeZone than the next change's gives the same row version two images: the chain
    /// breaks and the version inside the transaction is shown (as an INSERT, and as the UPDATE's old_record).
    /// </summary>
    [Theory]
    [InlineData("timestamptz", "timezone", "UTC", "Asia/Tokyo", "2026-01-01 00:00+00")]
    [InlineData("daterange", "datestyle", "ISO, MDY", "SQL, DMY", "[2026-01-01,2026-02-01)")] // a range's text follows DateStyle
    public async Task A_row_is_followed_whatever_output_settings_its_writer_changes(string type, string setting, string first, string then,
        string value)
    {
        var (owner, p) = await app.AnonReadableAsync($"{setting} images", $"create table events (at {type}, secret text)", "events");
        await using var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/events/stream?apikey={p.AnonKey}");
        Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);
        NoErrors(await TestApp.SqlAsync(owner, p.Id, $$"""
            do $$ begin
              set constraints all immediate;
              perform set_config('{{setting}}', '{{first}}', true);
              insert into events values ('{{value}}', 'SECRET');
              perform set_config('{{setting}}', '{{then}}', true);
              update events set secret = 'redacted';
            end $$;
            insert into events values (null, 'marker');
            """));
        var seen = await UpToMarkerAsync(s, "secret", "marker");
        var all = string.Join("\n", seen.Select(e => e.Data.GetRawText()));
        Assert.False(all.Contains("SECRET"), "anon stream events:\n" + all);
    }

    /// <summary>
    /// ChangeLog keeps 4 followed transactions for the whole instance (every project). With more transactions larger than a
    /// read being read at once — five tenants' bulk imports, or anonymous clients resuming in five big transactions of one
    /// project — entries are evicted between a transaction's pages, and each page follows the whole transaction again
    /// (up to 1,000,000 changes hashed, ~100 MB of dictionaries, on a command no client can cancel): a 1,000,000-change
    /// transaction read in 1,000 pages is hashed 1,000 times. Here six transactions of 1,100 changes, two pages each, read
    /// round robin: each should be followed once.
    /// </summary>
    [Fact]
    public async Task Interleaved_reads_of_several_big_transactions_follow_each_once()
    {
        var (owner, p) = await app.AnonReadableAsync("follow cache", "create table notes (n int, secret text)", "notes");
        await app.Service<ChangeCapture>().EnsureProjectAsync(p.Id);
        var log = app.Service<ChangeLog>();
        var (start, _) = await log.StateAsync(p.Id, CancellationToken.None);
        const int txs = 6, rows = 1100;
        for (var i = 0; i < txs; i++)
            NoErrors(await TestApp.SqlAsync(owner, p.Id, $"insert into notes select g, 'x' from generate_series(1, {rows}) g"));
        var cache = (System.Collections.IDictionary)typeof(ChangeLog)
            .GetField("_followed", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(log)!;

        var followed = new Dictionary<long, HashSet<object>>(); // transaction -> the distinct followings that served its pages
        for (var page = 0; page < 2; page++)
            for (var i = 0; i < txs; i++)
            {
                var (changes, _) = await log.ReadAsync(p.Id, start + i * rows + page * 1000, 1000, CancellationToken.None);
                var tx = changes[0].Tx;
                Assert.All(changes, c => Assert.NotNull(c.Place));
                (followed.TryGetValue(tx, out var set) ? set : followed[tx] = []).Add(cache[(p.Id, tx)]!);
            }
        var again = followed.Count(kv => kv.Value.Count > 1);
        Assert.True(again == 0, $"{again} of {txs} transactions were followed whole again for their second page");
    }

    /// <summary>
    /// Pruning cuts the log by each change's committed_at (the capture's clock_timestamp()), not by transaction: a
    /// transaction whose changes span the cut (a long one, or one written with SET CONSTRAINTS IMMEDIATE — or simply one
    /// big enough that its capture takes longer than the prune interval) keeps its tail. A client resuming in that tail
    /// (its Last-Event-ID is at or after pruned_through, so no reset) replays the tail followed on its own: the updates'
    /// first changes are gone, each update is "Alone", and its old_record is the version the row had inside the writer's
    /// transaction. (Run here as PruneAsync would at that moment, restricted to this project so as not to disturb others.)
    /// </summary>
    [Fact]
    public async Task A_prune_takes_whole_transactions_so_no_tail_is_replayed_on_its_own()
    {
        var (owner, p) = await app.AnonReadableAsync("prune cut", "create table notes (n int, secret text)", "notes");
        await app.Service<ChangeCapture>().EnsureProjectAsync(p.Id);
        const int rows = 1100;
        NoErrors(await TestApp.SqlAsync(owner, p.Id, $$"""
            do $$ begin
              set constraints all immediate;
              insert into notes select g, 'SECRET ' || g from generate_series(1, {{rows}}) g;
              perform pg_sleep(1.5);
              update notes set secret = 'redacted';
            end $$;
            """));
        var schema = ProjectNaming.Schema(p.Id);
        uint oid;
        long firstUpdate;
        await using (var conn = new Npgsql.NpgsqlConnection(app.Db.PlatformConnectionString))
        {
            await conn.OpenAsync();
            await using (var cmd = new Npgsql.NpgsqlCommand($"SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{schema}' AND c.relname = 'notes'", conn)) oid = (uint)(await cmd.ExecuteScalarAsync())!;
            // The retention's cut-off falls between the inserts and the updates: the inserts are aged past it.
            await using (var cmd = new Npgsql.NpgsqlCommand(
                "UPDATE dbstudio_realtime.changes SET committed_at = now() - interval '2 days' WHERE schema_name = $1 AND op = 'i'", conn))
            {
                cmd.Parameters.Add(new() { Value = schema });
                Assert.Equal(rows, await cmd.ExecuteNonQueryAsync());
            }
            await using (var cmd = new Npgsql.NpgsqlCommand("SELECT min(id) FROM dbstudio_realtime.changes WHERE schema_name = $1 AND op = 'u'", conn))
            {
                cmd.Parameters.Add(new() { Value = schema });
                firstUpdate = (long)(await cmd.ExecuteScalarAsync())!;
            }
        }
        await app.Service<ChangeHub>().PruneAsync();
        // The id of the first event the client got (the first row, inserted as it committed): issued to anon on this table.
        var key = await app.Service<StreamIds>().KeyAsync(p.Id, CancellationToken.None);
        var lastEventId = StreamIds.Format(key, oid, new StreamIdentity(RestRole.Anon, null, null), firstUpdate);
        await using var resumed = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/notes/stream?apikey={p.AnonKey}", lastEventId: lastEventId);
        Assert.Equal(HttpStatusCode.OK, resumed.Response.StatusCode);
        // The whole transaction went: the client is told to reload, then gets what comes next.
        Assert.Equal("reset", (await resumed.NextAsync(TimeSpan.FromSeconds(60))).Type);
        NoErrors(await TestApp.SqlAsync(owner, p.Id, "insert into notes values (0, 'marker')"));
        var replay = await UpToMarkerAsync(resumed, "secret", "marker");
        var all = string.Join("\n", replay.Select(e => e.Data.GetRawText()));
        Assert.False(all.Contains("SECRET"), "anon stream events:\n" + all[..Math.Min(all.Length, 2000)]);
        Assert.Single(replay);
    }

    /// <summary>
    /// Every read of the log turns each image into text (record::text, to size it; FollowAsync and the big-transaction
    /// queries hash that text too). A jsonb whose text is over 1 GB — a 180 MB string of control characters, each written
    /// \u0001 — makes every such statement fail ("out of memory ... Cannot enlarge string buffer"), deterministically:
    /// the project's pump logs a warning and reads again 250 ms later, forever (until the change is pruned a day later),
    /// with PostgreSQL detoasting the 180 MB and building 1 GB of text each time. Every stream of the project stalls —
    /// here one on another table than the one written.
    /// </summary>
    [Fact]
    public async Task One_change_whose_image_text_exceeds_1GB_does_not_stall_the_projects_streams()
    {
        var (owner, p) = await app.AnonReadableAsync("poison image", "create table notes (n int, secret text); create table blobs (b text)", "notes");
        await using var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/notes/stream?apikey={p.AnonKey}");
        Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);
        // Over the Connection URL: the console's statement timeout is short, and the machine may be slow.
        await using (var direct = new Npgsql.NpgsqlConnection(DbStudio.Tests.Integration.ConnectionSharesTests.FromUrl(p.ConnectionUrl)))
        {
            await direct.OpenAsync();
            await using var insert = new Npgsql.NpgsqlCommand("insert into blobs values (repeat(chr(1), 180000000))", direct) { CommandTimeout = 0 };
            await insert.ExecuteNonQueryAsync();
        }
        NoErrors(await TestApp.SqlAsync(owner, p.Id, "insert into notes values (0, 'marker')"));
        SseEvent? e = null;
        try { e = await s.NextAsync(TimeSpan.FromSeconds(90)); }
        catch (TimeoutException)
        {
            // Why: what the log's read does with that change.
            await using var conn = new Npgsql.NpgsqlConnection(app.Db.PlatformConnectionString);
            await conn.OpenAsync();
            await using var cmd = new Npgsql.NpgsqlCommand(
                "SELECT max(octet_length(record::text)) FROM dbstudio_realtime.changes WHERE schema_name = $1", conn);
            cmd.Parameters.Add(new() { Value = ProjectNaming.Schema(p.Id) });
            string why;
            try { why = $"read fine: {await cmd.ExecuteScalarAsync()}"; } catch (Npgsql.PostgresException x) { why = x.MessageText; }
            Assert.Fail("the marker never came; the log's read of the big change: " + why);
        }
        Assert.Equal("marker", e!.RecordText("secret"));
    }

    /// <summary>Checked fine: rows moved between partitions inside a big transaction (a delete on one partition, an insert
    /// on the other), a savepoint rolled back in it, and resumes from the first, a middle and the last of its events.</summary>
    [Fact]
    public async Task Partition_moves_and_a_rolled_back_savepoint_in_a_big_transaction_and_resumes_from_within_it()
    {
        var (owner, p) = await app.AnonReadableAsync("big tx partitions", """
            create table items (region text not null, n int, secret text) partition by list (region);
            create table items_a partition of items for values in ('a');
            create table items_b partition of items for values in ('b');
            """, "items");
        await using var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/items/stream?apikey={p.AnonKey}");
        Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);
        const int rows = 700;
        NoErrors(await TestApp.SqlAsync(owner, p.Id, $$"""
            do $$ begin
              insert into items select 'a', g, 'SECRET ' || g from generate_series(1, {{rows}}) g;
              update items set region = 'b';
              begin
                update items set secret = 'ROLLED BACK';
                raise exception 'undo';
              exception when raise_exception then null;
              end;
              update items set secret = 'redacted';
              update items set secret = secret; -- changes nothing
            end $$;
            insert into items values ('a', 0, 'marker');
            """));
        var seen = await UpToMarkerAsync(s, "secret", "marker");
        var all = string.Join("\n", seen.Select(e => e.Data.GetRawText()));
        Assert.False(all.Contains("SECRET") || all.Contains("ROLLED BACK"), all[..Math.Min(all.Length, 2000)]);
        Assert.Equal(rows + 1, seen.Count);
        Assert.All(seen.SkipLast(1), e => Assert.Equal("INSERT", e.Data.GetProperty("type").GetString()));
        foreach (var from in new[] { 0, rows / 2, rows - 1 })
        {
            await using var r = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/items/stream?apikey={p.AnonKey}", lastEventId: seen[from].Id);
            var replay = await UpToMarkerAsync(r, "secret", "marker");
            Assert.Equal(seen.Skip(from + 1).Select(e => e.Id), replay.Select(e => e.Id));
            Assert.DoesNotContain("SECRET", string.Join("\n", replay.Select(e => e.Data.GetRawText())));
        }
    }

    /// <summary>
    /// A row that went through a version over 1 MiB inside a transaction and committed small is never sent: the chain's
    /// last change has the oversized image as its old one, so it is "too large to stream" (RecordDigest set, images null),
    /// and Chain hides the net change although it needs only that change's new image (small, and held in RecordDigest)
    /// — an insert of 'short' here. A lost event; the same for a transaction netted in one read (8 rows) and one cut by
    /// the 16 MiB byte budget (40 rows of 600 KB, followed whole). Otherwise the big transaction is fine: no SECRET, and
    /// a resume from inside it gives exactly the rest.
    /// </summary>
    [Theory]
    [InlineData(8)]
    [InlineData(40)]
    public async Task A_row_over_1MiB_only_inside_its_transaction_is_sent_as_it_committed(int rows)
    {
        var (owner, p) = await app.AnonReadableAsync($"big tx bytes {rows}", "create table docs (n int, secret text, body text)", "docs");
        await using var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/docs/stream?apikey={p.AnonKey}");
        Assert.Equal(HttpStatusCode.OK, s.Response.StatusCode);
        NoErrors(await TestApp.SqlAsync(owner, p.Id, $$"""
            do $$ begin
              insert into docs select g, 'SECRET ' || g, repeat(md5(g::text), 19000) from generate_series(1, {{rows}}) g;
              update docs set body = repeat('y', 1200000) where n = 7;
              update docs set secret = 'redacted';
              update docs set body = 'short' where n = 7;
            end $$;
            insert into docs values (0, 'marker', '');
            """));
        var seen = await UpToMarkerAsync(s, "secret", "marker");
        var all = string.Join("\n", seen.Select(e => e.Data.GetRawText()[..Math.Min(200, e.Data.GetRawText().Length)]));
        Assert.False(all.Contains("SECRET"), all);
        await using var r = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/docs/stream?apikey={p.AnonKey}", lastEventId: seen[3].Id);
        var replay = await UpToMarkerAsync(r, "secret", "marker");
        Assert.Equal(seen.Skip(4).Select(e => e.Id), replay.Select(e => e.Id));
        var sent = seen.Select(e => e.RecordText("n")).ToHashSet();
        Assert.True(seen.Count == rows + 1, $"rows never sent: {string.Join(", ", Enumerable.Range(1, rows).Where(n => !sent.Contains(n.ToString())))}");
    }
}
