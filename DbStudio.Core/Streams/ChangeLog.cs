// The change log (schema dbstudio_realtime, made by the ChangeLog, CaptureInBulk and Isolation migrations): every SQL
// statement the platform runs on it lives here. Each PostgreSQL server keeps the log of its own projects (the capture
// trigger writes it in the writing transaction): the platform's server has it from the migrations, every other server
// gets the same schema at start-up (PrepareServerAsync), and each read goes to the project's server (ProjectServers).
// The log is the platform's own table — reading and pruning it runs no project code. Ids are per project and become visible in order (assigned at commit under the project's stream row
// lock), so a reader that has seen id N has seen everything below it: resuming after an id is exact.
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Core.Sql;
using Npgsql;

namespace DbStudio.Core.Streams;

/// <summary>
/// One committed change as the log holds it: whole row images (record, old_record) as JSON text, the changed relation
/// (a partition, for a partitioned table) and the relations above it, whose subscribers it reaches too.
/// </summary>
/// <summary>One captured row change. <paramref name="Tx"/>: the writing transaction (a change logged before transactions
/// were recorded has one of its own) — its changes of one row are netted before anybody is shown them (<see cref="ChangeNetting"/>).</summary>
public sealed record Change(long Id, uint TableOid, uint[] Ancestors, char Op, string? Record, string? OldRecord, DateTimeOffset CommittedAt,
    long Tx = 0)
{
    /// <summary>For a change too large to stream (its images are null): what identifies each image — the image itself
    /// where it is small, its digest where it is the large one — so that netting still follows the row through it.</summary>
    public string? RecordDigest { get; init; }
    public string? OldRecordDigest { get; init; }

    /// <summary>For a change of a transaction larger than one read: where it stands in its row's chain, as the log followed
    /// the transaction whole (null otherwise: netted with the rest of its read).</summary>
    public ChainPlace? Place { get; init; }

    /// <summary>What identifies the new (old) image when following a row: the image itself, else its digest.</summary>
    internal string? NewImage => Record ?? RecordDigest;
    internal string? OldImage => OldRecord ?? OldRecordDigest;
}

public sealed class ChangeLog(Platform.ProjectServers servers)
{
    private static readonly System.Diagnostics.Metrics.Counter<long> Oversized = new System.Diagnostics.Metrics.Meter(ChangeHub.MeterName)
        .CreateCounter<long>("dbstudio.stream.oversized", "{change}", "Changes whose row image was too large to stream");
    private static readonly System.Diagnostics.Metrics.Counter<long> Unreadable = new System.Diagnostics.Metrics.Meter(ChangeHub.MeterName)
        .CreateCounter<long>("dbstudio.stream.unreadable_reads", "{read}", "Reads of the log made again without the text of large images");
    private static readonly System.Diagnostics.Metrics.Counter<long> TooLarge = new System.Diagnostics.Metrics.Meter(ChangeHub.MeterName)
        .CreateCounter<long>("dbstudio.stream.transactions_too_large", "{transaction}", "Transactions with more changes than the stream follows whole");
    /// <summary>The notification channel the capture trigger notifies (with no payload).</summary>
    public const string Channel = "dbstudio_changes";

    /// <summary>The newest change id of a stream: the newest change, or past what pruning cut (last_id, no longer moved by
    /// writes since CaptureCost, is a floor a moved project's log brought along).</summary>
    private const string LastIdSql =
        "greatest(s.last_id, s.pruned_through, coalesce((SELECT max(c.id) FROM dbstudio_realtime.changes c WHERE c.schema_name = s.schema_name), 0))";

    /// <summary>Largest row image handed to the stream (a larger one is delivered to nobody: see README).</summary>
    public const int MaxImageBytes = 1024 * 1024;
    /// <summary>About this many bytes of images per read (the rest follow in the next).</summary>
    private const long BatchBytes = 16 * 1024 * 1024;

    // Images are sized in PostgreSQL and only those up to MaxImageBytes come back: a row whose compressed 2 MB stand for
    // 150 MB of text never reaches the app's memory.
    private static readonly string Columns = ColumnsSql(safe: false);

    /// <summary>
    /// The same, for a read the plain one could not make: an image whose text PostgreSQL cannot build (over 1 GB — a
    /// 180 MB string of control characters, each written \u0001, is one) failed every read of the project's log, so
    /// every stream of the project stalled. Here an image stored larger than <see cref="SafeStoredBytes"/> is not turned
    /// into text at all: too large to stream, identified by its jsonb hash.
    /// </summary>
    private static readonly string SafeColumns = ColumnsSql(safe: true);

    /// <summary>Stored (compressed) size up to which an image's text stays far below PostgreSQL's 1 GB limit.</summary>
    private const int SafeStoredBytes = 256 * 1024;

    private static string ColumnsSql(bool safe)
    {
        string TooLarge(string text, string huge) => safe
            ? $"(coalesce({huge}, false) OR coalesce(octet_length({text}) > {MaxImageBytes}, false))"
            : $"coalesce(octet_length({text}) > {MaxImageBytes}, false)";
        // What identifies an image too large to stream (netting follows a row through it): its text's digest; in the
        // safe read jsonb's own hash, the same however the value is stored (its text is not built).
        string Identity(string image, string text, string huge) => safe
            ? $"CASE WHEN {TooLarge(text, huge)} THEN 'md5:h' || jsonb_hash_extended({image}, 0)::text || '.' || jsonb_hash_extended({image}, 1)::text ELSE {text} END"
            : $"CASE WHEN octet_length({text}) <= {MaxImageBytes} THEN {text} ELSE 'md5:' || md5({text}) END";
        var (rBig, oBig) = (TooLarge("t.rt", "h.rh"), TooLarge("t.ot", "h.oh"));
        var texts = safe
            ? $"""
              CROSS JOIN LATERAL (SELECT pg_column_size(c.record) > {SafeStoredBytes} AS rh, pg_column_size(c.old_record) > {SafeStoredBytes} AS oh OFFSET 0) h
              CROSS JOIN LATERAL (SELECT CASE WHEN NOT h.rh THEN c.record::text END AS rt, CASE WHEN NOT h.oh THEN c.old_record::text END AS ot OFFSET 0) t
              """
            : "CROSS JOIN LATERAL (SELECT c.record::text AS rt, c.old_record::text AS ot OFFSET 0) t";
        return $"""
            SELECT c.id, c.table_oid, ARRAY(SELECT a.relid::oid FROM pg_partition_ancestors(c.table_oid) a WHERE a.relid <> c.table_oid),
                   c.op, CASE WHEN NOT {rBig} THEN t.rt END, CASE WHEN NOT {oBig} THEN t.ot END,
                   c.committed_at, {rBig} OR {oBig}, coalesce(c.xact::text::int8, -c.id),
                   CASE WHEN {rBig} OR {oBig} THEN {Identity("c.record", "t.rt", "h.rh")} END,
                   CASE WHEN {rBig} OR {oBig} THEN {Identity("c.old_record", "t.ot", "h.oh")} END
                   , c.xact = (SELECT p.xact FROM dbstudio_realtime.changes p WHERE p.schema_name = $1 AND p.id = $2)
            FROM dbstudio_realtime.changes c
            {texts}
            """;
    }

    /// <summary>The most changes of one transaction the log follows whole (a larger one is shown to nobody: see README).</summary>
    public const int MaxFollowedTransaction = 1_000_000;

    /// <summary>
    /// Every change of transaction $3 (whose change $2 is), in order: its table, kind and images' hashes (jsonb's own
    /// hash with two seeds: computed from the value, whatever its size or how it is stored, without building its text). Ids of one project's transaction are consecutive
    /// (given out under its stream row's lock), so the transaction is the run of ids around $2 with its xact.
    /// </summary>
    private static readonly string TransactionSql = $"""
        WITH b AS (SELECT
          coalesce((SELECT c.id FROM dbstudio_realtime.changes c WHERE c.schema_name = $1 AND c.id < $2 AND c.xact IS DISTINCT FROM $3::xid8
                    ORDER BY c.id DESC LIMIT 1), 0) AS lo,
          coalesce((SELECT c.id FROM dbstudio_realtime.changes c WHERE c.schema_name = $1 AND c.id > $2 AND c.xact IS DISTINCT FROM $3::xid8
                    ORDER BY c.id LIMIT 1), 9223372036854775807) AS hi)
        SELECT c.id, c.table_oid, c.op,
               int8send(jsonb_hash_extended(c.record, 0)) || int8send(jsonb_hash_extended(c.record, 1)),
               int8send(jsonb_hash_extended(c.old_record, 0)) || int8send(jsonb_hash_extended(c.old_record, 1))
        FROM dbstudio_realtime.changes c, b WHERE c.schema_name = $1 AND c.id > b.lo AND c.id < b.hi
        ORDER BY c.id LIMIT {MaxFollowedTransaction + 1}
        """;

    /// <summary>What chains' first changes say of their rows before the transaction: the old image, or — too large to
    /// stream (or stored too large to be turned into text safely) — null and the mark of a too large one.</summary>
    private static readonly string FirstChangesSql = $"""
        SELECT c.id, CASE WHEN octet_length(t.ot) <= {MaxImageBytes} THEN t.ot END,
               CASE WHEN t.ot IS NULL OR octet_length(t.ot) > {MaxImageBytes} THEN 'md5:' END
        FROM dbstudio_realtime.changes c
        CROSS JOIN LATERAL (SELECT CASE WHEN pg_column_size(c.old_record) <= {SafeStoredBytes} THEN c.old_record::text END AS ot OFFSET 0) t
        WHERE c.schema_name = $1 AND c.id = ANY($2)
        """;

    /// <summary>The project's stream row (made when a project is first followed or captured).</summary>
    private static string CreateStreamSql(string projectId) =>
        $"INSERT INTO dbstudio_realtime.streams (schema_name) VALUES ({SqlText.Literal(ProjectNaming.Schema(projectId))}) ON CONFLICT DO NOTHING;";

    /// <summary>
    /// The change log's schema on a server other than the platform's, as the migrations left it on the platform's (the
    /// ChangeLog, CaptureInBulk, Isolation, InlineCallerSchema, ChangeTransactions, CaptureSettings and CaptureCost migrations' SQL): made when the schema is
    /// missing; a server that has it gets the later migrations' replaced functions (they are idempotent). A later change
    /// to the log's SQL must be made here too.
    /// </summary>
    public static async Task PrepareServerAsync(Platform.DbServer server, CancellationToken ct = default)
    {
        if (server.IsPlatform) return; // the migrations made it
        await using var conn = await server.DataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var lockCmd = new NpgsqlCommand(Platform.PlatformLocks.ChangeLog, conn, tx))
            await lockCmd.ExecuteNonQueryAsync(ct);
        bool exists;
        await using (var check = new NpgsqlCommand("SELECT to_regnamespace('dbstudio_realtime') IS NOT NULL", conn, tx))
            exists = await check.ExecuteScalarAsync(ct) is true;
        var isolation = Platform.Migrations.Isolation.Sql;
        var sql = (exists
            ? Platform.Migrations.InlineCallerSchema.Sql
            : Platform.Migrations.ChangeLog.SchemaSql + "\n" + Platform.Migrations.CaptureInBulk.CaptureInBulkSql + "\n"
              + "ALTER TABLE dbstudio_realtime.changes ADD COLUMN table_oid oid NOT NULL;\n"
              + isolation[isolation.IndexOf("CREATE OR REPLACE FUNCTION", StringComparison.Ordinal)..] + "\n"
              + Platform.Migrations.InlineCallerSchema.Sql)
            // The capture function as it is now (CREATE OR REPLACE: the same again changes nothing), then its settings
            // (ALTER FUNCTION … SET, which it already has).
            + "\n" + Platform.Migrations.CaptureCost.Sql
            + "\n" + Platform.Migrations.CaptureSettings.Sql;
        await using (var create = new NpgsqlCommand(sql, conn, tx)) await create.ExecuteNonQueryAsync(ct);
        // The ChangeTransactions migration only where the log lacks its column: ALTER TABLE locks the log (every captured
        // write of the server) even when it changes nothing, and instances start while projects write.
        await using (var has = new NpgsqlCommand(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = 'dbstudio_realtime.changes'::regclass AND attname = 'xact' AND NOT attisdropped)",
            conn, tx))
            if (await has.ExecuteScalarAsync(ct) is not true)
                await using (var add = new NpgsqlCommand(Platform.Migrations.ChangeTransactions.Sql, conn, tx)) await add.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>Drops a deleted project's log and stream row, on every server (at once on the deleting instance; pruning
    /// catches any left).</summary>
    public async Task DropProjectAsync(string projectId, CancellationToken ct)
    {
        foreach (var server in servers.All) await DropOnAsync(server, projectId, ct);
    }

    /// <summary>Drops a project's log and stream row on one server (deleted, or moved away from it).</summary>
    public static async Task DropOnAsync(Platform.DbServer server, string projectId, CancellationToken ct)
    {
        // A batch of two: one command with two statements cannot take parameters (42601), which left every deleted
        // project's log to pruning.
        await using var batch = server.DataSource.CreateBatch();
        foreach (var sql in (string[])["DELETE FROM dbstudio_realtime.changes WHERE schema_name = $1",
                     "DELETE FROM dbstudio_realtime.streams WHERE schema_name = $1"])
            batch.BatchCommands.Add(new NpgsqlBatchCommand(sql) { Parameters = { new() { Value = ProjectNaming.Schema(projectId) } } });
        await batch.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// Copies a project's log to the server it is moving to (ProjectMover; nothing is written on either meanwhile): its
    /// stream row, so ids go on from where they were, and its changes, streamed with COPY. A moved table has another OID
    /// there: <paramref name="oids"/> maps old to new, and a change of a table that no longer exists gets OID 0 (never a
    /// table's). Returns how many changes were copied.
    /// </summary>
    public static async Task<long> CopyProjectAsync(string projectId, Platform.DbServer from, Platform.DbServer to,
        IReadOnlyDictionary<uint, uint> oids, CancellationToken ct)
    {
        const string columns = "schema_name, id, table_name, table_oid, op, record, old_record, committed_at, xact";
        var schema = ProjectNaming.Schema(projectId);
        await using var source = await from.DataSource.OpenConnectionAsync(ct);
        await using var target = await to.DataSource.OpenConnectionAsync(ct);
        await using var tx = await target.BeginTransactionAsync(ct);
        long lastId = 0, prunedThrough = 0;
        await using (var state = new NpgsqlCommand("SELECT last_id, pruned_through FROM dbstudio_realtime.streams WHERE schema_name = $1", source))
        {
            state.Parameters.Add(new() { Value = schema });
            await using var r = await state.ExecuteReaderAsync(ct);
            if (await r.ReadAsync(ct)) (lastId, prunedThrough) = (r.GetInt64(0), r.GetInt64(1));
        }
        await using (var stream = new NpgsqlCommand("""
            INSERT INTO dbstudio_realtime.streams (schema_name, last_id, pruned_through) VALUES ($1, $2, $3)
            ON CONFLICT (schema_name) DO UPDATE SET last_id = excluded.last_id, pruned_through = excluded.pruned_through
            """, target, tx))
        {
            foreach (var v in new object[] { schema, lastId, prunedThrough }) stream.Parameters.Add(new() { Value = v });
            await stream.ExecuteNonQueryAsync(ct);
        }
        await using (var clear = new NpgsqlCommand("DELETE FROM dbstudio_realtime.changes WHERE schema_name = $1", target, tx))
        {
            clear.Parameters.Add(new() { Value = schema });
            await clear.ExecuteNonQueryAsync(ct);
        }
        {
            using var reader = await source.BeginTextExportAsync(
                $"COPY (SELECT {columns} FROM dbstudio_realtime.changes WHERE schema_name = {SqlText.Literal(schema)} ORDER BY id) TO STDOUT", ct);
            await using var writer = await target.BeginTextImportAsync($"COPY dbstudio_realtime.changes ({columns}) FROM STDIN", ct);
            var buffer = new char[64 * 1024];
            int n;
            while ((n = await reader.ReadAsync(buffer.AsMemory(), ct)) > 0) await writer.WriteAsync(buffer.AsMemory(0, n), ct);
        }
        long copied;
        await using (var remap = new NpgsqlCommand("""
            UPDATE dbstudio_realtime.changes c
            SET table_oid = coalesce((SELECT m.new FROM unnest($2::oid[], $3::oid[]) AS m(old, new) WHERE m.old = c.table_oid), 0)
            WHERE c.schema_name = $1
            """, target, tx))
        {
            remap.Parameters.Add(new() { Value = schema });
            remap.Parameters.Add(new() { Value = oids.Keys.ToArray(), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Oid });
            remap.Parameters.Add(new() { Value = oids.Values.ToArray(), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Oid });
            copied = await remap.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        return copied;
    }

    /// <summary>The data source of the project's server, where its log is (while it is being moved: the server it leaves,
    /// where nothing is written meanwhile — readers of other projects never wait for a move).</summary>
    private async ValueTask<NpgsqlDataSource> LogOfAsync(string projectId, CancellationToken ct) =>
        (await servers.OfAsync(projectId, ct, waitWhileMoving: false)).DataSource;

    /// <summary>Makes sure the project has its stream row (projects made before the log existed).</summary>
    public async Task EnsureStreamAsync(string projectId, CancellationToken ct)
    {
        await using var cmd = (await LogOfAsync(projectId, ct)).CreateCommand(CreateStreamSql(projectId));
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The newest id given out, and the id up to which the log has been pruned.</summary>
    public async Task<(long LastId, long PrunedThrough)> StateAsync(string projectId, CancellationToken ct)
    {
        await using var cmd = (await LogOfAsync(projectId, ct)).CreateCommand(
            $"SELECT {LastIdSql}, s.pruned_through FROM dbstudio_realtime.streams s WHERE s.schema_name = $1");
        cmd.Parameters.Add(new() { Value = ProjectNaming.Schema(projectId) });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? (r.GetInt64(0), r.GetInt64(1)) : (0, 0);
    }

    /// <summary>The newest id of each of these projects (one query per server for every project with subscribers).</summary>
    public async Task<Dictionary<string, long>> LastIdsAsync(IReadOnlyCollection<string> projectIds, CancellationToken ct)
    {
        var result = new Dictionary<string, long>(projectIds.Count);
        var byServer = new Dictionary<Platform.DbServer, List<string>>();
        foreach (var id in projectIds)
        {
            var server = await servers.OfAsync(id, ct, waitWhileMoving: false);
            (byServer.TryGetValue(server, out var ids) ? ids : byServer[server] = []).Add(id);
        }
        foreach (var (server, ids) in byServer)
        {
            await using var cmd = server.DataSource.CreateCommand(
                $"SELECT substr(s.schema_name, 6), {LastIdSql} FROM dbstudio_realtime.streams s WHERE s.schema_name = ANY($1)");
            cmd.Parameters.Add(new() { Value = ids.Select(ProjectNaming.Schema).ToArray() });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) result[r.GetString(0)] = r.GetInt64(1);
        }
        return result;
    }

    /// <summary>
    /// Where the transaction of change <paramref name="id"/> begins: the last change of the transaction before it (or
    /// <paramref name="id"/> itself when it is gone). A resumed stream reads from there, so that the change's transaction
    /// is netted whole (ChangeNetting).
    /// </summary>
    public async Task<long> TransactionStartAsync(string projectId, long id, CancellationToken ct)
    {
        await using var cmd = (await LogOfAsync(projectId, ct)).CreateCommand("""
            WITH t AS (SELECT c.xact FROM dbstudio_realtime.changes c WHERE c.schema_name = $1 AND c.id = $2 AND c.xact IS NOT NULL)
            SELECT coalesce(
              (SELECT c.id FROM dbstudio_realtime.changes c, t WHERE c.schema_name = $1 AND c.id < $2 AND c.xact IS DISTINCT FROM t.xact
               ORDER BY c.id DESC LIMIT 1),
              (SELECT min(c.id) - 1 FROM dbstudio_realtime.changes c WHERE c.schema_name = $1 AND EXISTS (SELECT FROM t)),
              $2)
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = ProjectNaming.Schema(projectId) });
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        return (long)(await cmd.ExecuteScalarAsync(ct))!;
    }

    /// <summary>The project's changes after <paramref name="after"/>, every table, in id order; More when the read stopped
    /// short of the log's end (the row limit or the byte budget).</summary>
    public Task<(List<Change> Changes, bool More)> ReadAsync(string projectId, long after, int limit, CancellationToken ct) =>
        QueryAsync(projectId, $"{Columns} WHERE c.schema_name = $1 AND c.id > $2 ORDER BY c.id LIMIT {limit}", limit,
            [ProjectNaming.Schema(projectId), after], ct);

    /// <summary>
    /// The changes of one table (by OID, its partitions included) after <paramref name="after"/>: a table dropped and
    /// made again under the same name has another OID, so its predecessor's rows never come back.
    /// </summary>
    public Task<(List<Change> Changes, bool More)> ReadTableAsync(string projectId, uint tableOid, long after, int limit, CancellationToken ct) =>
        QueryAsync(projectId, $"""
            {Columns} WHERE c.schema_name = $1 AND c.id > $2
              AND (c.table_oid = $3 OR c.table_oid IN (SELECT t.relid::oid FROM pg_partition_tree($3) t))
            ORDER BY c.id LIMIT {limit}
            """, limit, [ProjectNaming.Schema(projectId), after, new NpgsqlParameter { Value = tableOid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid }], ct);

    /// <summary>Drops changes older than <paramref name="retention"/> and records, per project, how far the log has been cut:
    /// on every server.</summary>
    public async Task PruneAsync(TimeSpan retention, CancellationToken ct)
    {
        List<Exception>? failed = null;
        foreach (var server in servers.All)
        {
            try { await PruneAsync(server, retention, ct); }
            catch (Exception e) when (!ct.IsCancellationRequested) { (failed ??= []).Add(e); } // the next servers all the same
        }
        if (failed is not null) throw new AggregateException("Pruning the change log failed", failed);
    }

    /// <summary>Changes one pruning statement removes (plus the rest of the last transaction it cuts into).</summary>
    internal const int PruneBatch = 50_000;
    /// <summary>Batches per project and pass: a project with more due (a bulk load a day ago, or rows a tenant wrote into
    /// its own log) goes on at the next pass, after every other project of the server has had its turn.</summary>
    internal const int PruneBatchesPerPass = 20;

    private static async Task PruneAsync(Platform.DbServer server, TimeSpan retention, CancellationToken ct)
    {
        var platform = server.DataSource;
        // Projects whose oldest change is due: each is then pruned in transactions of its own, holding only its own
        // stream row. (One statement for all of them held every due project's row — which each of their writes needs —
        // while it deleted the largest log, and one log large enough ran it past its timeout: nobody was pruned.)
        var due = new List<string>();
        await using (var find = platform.CreateCommand("""
            SELECT s.schema_name FROM dbstudio_realtime.streams s
            WHERE (SELECT c.committed_at FROM dbstudio_realtime.changes c WHERE c.schema_name = s.schema_name ORDER BY c.id LIMIT 1) < now() - $1
            """))
        {
            find.Parameters.Add(new() { Value = retention });
            await using var r = await find.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) due.Add(r.GetString(0));
        }
        List<Exception>? failed = null;
        foreach (var schema in due)
        {
            try
            {
                for (var batch = 0; batch < PruneBatchesPerPass; batch++)
                    if (await PruneBatchAsync(platform, schema, retention, ct) < PruneBatch) break;
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                (failed ??= []).Add(e); // the other projects are pruned all the same
            }
        }
        // The log of a project that no longer exists (its deletion's own clean-up did not get to it): on another server than
        // the platform's, one whose schema is gone there (deleted, or moved away — or dropped by its owner, who may then
        // hold its stream row: such a row is skipped, never waited for).
        await using var orphans = platform.CreateCommand($"""
            WITH gone AS (
              DELETE FROM dbstudio_realtime.streams s
              WHERE s.schema_name IN (SELECT o.schema_name FROM dbstudio_realtime.streams o WHERE NOT EXISTS ({(server.IsPlatform
                  ? "SELECT 1 FROM platform.projects p WHERE 'proj_' || p.\"Id\" = o.schema_name"
                  : "SELECT 1 FROM pg_namespace n WHERE n.nspname = o.schema_name")}) FOR UPDATE SKIP LOCKED) RETURNING s.schema_name)
            DELETE FROM dbstudio_realtime.changes c USING gone g WHERE c.schema_name = g.schema_name;
            """);
        orphans.CommandTimeout = 600; // a deleted project's whole log, when its deletion did not get to it
        await orphans.ExecuteNonQueryAsync(ct);
        if (failed is not null) throw new AggregateException("Pruning the change log failed for some projects", failed);
    }

    /// <summary>
    /// Prunes up to <see cref="PruneBatch"/> of one project's due changes, in one transaction that holds its stream row;
    /// none when another holds it (a project writing: its capture holds the row to the end of its transaction, which it
    /// may keep open) — then it is pruned at a later pass, and neither holds up the other. Returns how many were cut.
    /// </summary>
    private static async Task<int> PruneBatchAsync(NpgsqlDataSource platform, string schema, TimeSpan retention, CancellationToken ct)
    {
        // Whole transactions: a cut inside one (its changes were captured on both sides of the cut) would leave its tail to
        // be netted on its own — a resumed stream would get its updates from versions inside the transaction. So the rest
        // of the last cut transaction goes too (the run of ids after the cut with its xact), and pruned_through moves past
        // it: a stream resuming in it is reset.
        await using var cmd = platform.CreateCommand("""
            WITH locked AS (SELECT s.schema_name FROM dbstudio_realtime.streams s WHERE s.schema_name = $2 FOR UPDATE SKIP LOCKED),
                 first AS (SELECT c.id FROM dbstudio_realtime.changes c
                           WHERE c.schema_name = $2 AND EXISTS (SELECT FROM locked) AND c.committed_at < now() - $1
                           ORDER BY c.id LIMIT $3),
                 cut AS (DELETE FROM dbstudio_realtime.changes c USING first f
                         WHERE c.schema_name = $2 AND c.id = f.id RETURNING c.id, c.xact),
                 edge AS (SELECT id, xact FROM cut ORDER BY id DESC LIMIT 1),
                 bound AS (SELECT e.id, e.xact, coalesce(
                             (SELECT n.id FROM dbstudio_realtime.changes n WHERE n.schema_name = $2 AND n.id > e.id
                                AND n.xact IS DISTINCT FROM e.xact ORDER BY n.id LIMIT 1), 9223372036854775807) AS hi FROM edge e),
                 rest AS (DELETE FROM dbstudio_realtime.changes c USING bound e
                          WHERE c.schema_name = $2 AND c.id > e.id AND c.id < e.hi AND c.xact = e.xact RETURNING c.id),
                 moved AS (UPDATE dbstudio_realtime.streams s
                           SET pruned_through = greatest(s.pruned_through, (SELECT max(id) FROM (SELECT id FROM cut UNION ALL SELECT id FROM rest) g))
                           WHERE s.schema_name = $2 AND EXISTS (SELECT FROM cut) RETURNING 1)
            SELECT count(*)::int FROM cut
            """);
        // Bounded by the batch, and by the size of the last transaction it cuts into (its rest goes in the same statement).
        cmd.CommandTimeout = 600;
        cmd.Parameters.Add(new() { Value = retention });
        cmd.Parameters.Add(new() { Value = schema });
        cmd.Parameters.Add(new() { Value = PruneBatch });
        return (int)(await cmd.ExecuteScalarAsync(ct))!;
    }

    private async Task<(List<Change> Changes, bool More)> QueryAsync(string projectId, string sql, int limit, object[] args, CancellationToken ct)
    {
        List<Change> list;
        bool more, continues;
        try { (list, more, continues) = await ReadChangesAsync(projectId, sql, args, limit, ct); }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.ProgramLimitExceeded or PostgresErrorCodes.OutOfMemory)
        {
            // An image whose text PostgreSQL cannot build: read again without building the text of large images.
            Unreadable.Add(1);
            (list, more, continues) = await ReadChangesAsync(projectId, sql.Replace(Columns, SafeColumns, StringComparison.Ordinal),
                [.. args.Select(a => a is NpgsqlParameter p ? p.Clone() : a)], limit, ct);
        }
        // A read that stopped short ends with the last whole transaction: a transaction's changes of one row are netted
        // together (ChangeNetting), so none of them may wait for the next read.
        long? followed = continues && list[0].Tx > 0 ? list[0].Tx : null;
        if (more && list.Count > 0)
        {
            var lastTx = list[^1].Tx;
            var whole = list.FindLastIndex(c => c.Tx != lastTx) + 1;
            if (whole > 0) list.RemoveRange(whole, list.Count - whole);
            else if (lastTx > 0) followed = lastTx;
        }
        // A transaction larger than one read (this read is part of it, or goes on with one begun before it): its rows are
        // followed through the whole transaction, and each of its changes here is told its place.
        if (followed is { } tx) await PlaceAsync(projectId, tx, list, ct);
        return (list, more);
    }

    private async Task<(List<Change> List, bool More, bool Continues)> ReadChangesAsync(string projectId, string sql, object[] args,
        int limit, CancellationToken ct)
    {
        var list = new List<Change>();
        await using var cmd = (await LogOfAsync(projectId, ct)).CreateCommand(sql);
        foreach (var a in args) cmd.Parameters.Add(a as NpgsqlParameter ?? new NpgsqlParameter { Value = a });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        long bytes = 0;
        var continues = false;
        while (bytes < BatchBytes && await r.ReadAsync(ct))
        {
            // Whether the read begins inside the transaction of the change it reads after.
            if (list.Count == 0) continues = !r.IsDBNull(11) && r.GetBoolean(11);
            var record = r.IsDBNull(4) ? null : r.GetString(4);
            var old = r.IsDBNull(5) ? null : r.GetString(5);
            if (!r.IsDBNull(7) && r.GetBoolean(7))
            {
                // Too large to stream: nobody is shown it (the table's readers see it with GET).
                record = old = null;
                Oversized.Add(1);
            }
            bytes += (record?.Length ?? 0) + (old?.Length ?? 0);
            list.Add(new Change(r.GetInt64(0), r.GetFieldValue<uint>(1), r.GetFieldValue<uint[]>(2), r.GetChar(3),
                record, old, r.GetFieldValue<DateTimeOffset>(6), r.GetInt64(8))
            {
                RecordDigest = r.IsDBNull(9) ? null : r.GetString(9), OldRecordDigest = r.IsDBNull(10) ? null : r.GetString(10),
            });
        }
        return (list, list.Count == limit || bytes >= BatchBytes, continues);
    }

    /// <summary>Transactions larger than one read, followed whole: read page by page by every feed of the project (and by
    /// resumed streams), so each is followed once while it is read — the least recently used go first, past a count and
    /// a budget of chain entries (what they hold).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Project, long Tx), FollowedEntry> _followed = new();
    private const int FollowedKept = 64;
    private const long FollowedBudget = 2_000_000;

    private sealed class FollowedEntry(Lazy<Task<Followed>> follow)
    {
        public Lazy<Task<Followed>> Follow { get; } = follow;
        public long LastUsed;
        public long Weight => Follow.IsValueCreated && Follow.Value.IsCompletedSuccessfully
            ? Follow.Value.Result.Last.Count + Follow.Value.Result.Within.Count + 1 : 1;
    }

    /// <summary>A transaction's chains: each chain's last change (with its first's id and kind), the changes within chains.</summary>
    private sealed record Followed(Dictionary<long, (long FirstId, char FirstOp)> Last, HashSet<long> Within, bool TooLarge);

    private async Task PlaceAsync(string projectId, long tx, List<Change> list, CancellationToken ct)
    {
        var key = (projectId, tx);
        var anyId = list.First(c => c.Tx == tx).Id;
        var entry = _followed.GetOrAdd(key, _ => new FollowedEntry(new Lazy<Task<Followed>>(() => FollowAsync(projectId, tx, anyId))));
        Volatile.Write(ref entry.LastUsed, System.Diagnostics.Stopwatch.GetTimestamp());
        Followed followed;
        try { followed = await entry.Follow.Value.WaitAsync(ct); }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            _followed.TryRemove(new KeyValuePair<(string, long), FollowedEntry>(key, entry));
            throw;
        }
        KeepFollowedWithinBounds(key);

        var firsts = followed.TooLarge ? [] : list
            .Where(c => c.Tx == tx && followed.Last.TryGetValue(c.Id, out var f) && f.FirstOp != 'i')
            .Select(c => followed.Last[c.Id].FirstId).Distinct().ToArray();
        var before = new Dictionary<long, (string? Old, string? Digest)>();
        if (firsts.Length > 0)
        {
            await using var cmd = (await LogOfAsync(projectId, ct)).CreateCommand(FirstChangesSql);
            cmd.Parameters.Add(new NpgsqlParameter { Value = ProjectNaming.Schema(projectId) });
            cmd.Parameters.Add(new NpgsqlParameter { Value = firsts });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) before[r.GetInt64(0)] = (r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2));
        }
        for (var i = 0; i < list.Count; i++)
        {
            var c = list[i];
            if (c.Tx != tx) continue;
            ChainPlace place;
            if (followed.TooLarge || followed.Within.Contains(c.Id)) place = ChainPlace.Within;
            else if (!followed.Last.TryGetValue(c.Id, out var first)) place = ChainPlace.Alone;
            else if (first.FirstOp == 'i') place = new LastOfChain('i', null, null);
            // (A first change pruned from the log meanwhile: what the row was before is unknown, so nobody is shown it.)
            else place = before.TryGetValue(first.FirstId, out var old) ? new LastOfChain(first.FirstOp, old.Old, old.Digest) : ChainPlace.Within;
            list[i] = c with { Place = place };
        }
    }

    /// <summary>Forgets a project's followed transactions (moved: its log's transaction ids were another server's; deleted).</summary>
    public void Forget(string projectId)
    {
        foreach (var key in _followed.Keys)
            if (key.Project == projectId) _followed.TryRemove(key, out _);
    }

    private void KeepFollowedWithinBounds((string, long) inUse)
    {
        var entries = _followed.ToArray();
        var weight = entries.Sum(e => e.Value.Weight);
        if (entries.Length <= FollowedKept && weight <= FollowedBudget) return;
        var count = entries.Length;
        foreach (var (k, e) in entries.OrderBy(e => Volatile.Read(ref e.Value.LastUsed)))
        {
            if (count <= FollowedKept && weight <= FollowedBudget) break;
            if (k == inUse || !_followed.TryRemove(new KeyValuePair<(string, long), FollowedEntry>(k, e))) continue;
            count--;
            weight -= e.Weight;
        }
    }

    /// <summary>Follows each row through a whole transaction, as ChangeNetting does within one read: an update or delete
    /// continues the chain whose current image is its old one.</summary>
    private async Task<Followed> FollowAsync(string projectId, long tx, long anyId)
    {
        await using var cmd = (await LogOfAsync(projectId, CancellationToken.None)).CreateCommand(TransactionSql);
        // Bounded by the transaction (at most MaxFollowedTransaction changes), not by the default 30 s: a large one on a
        // slow machine would fail every time, and the project's streams would stall on it.
        cmd.CommandTimeout = 600;
        cmd.Parameters.Add(new NpgsqlParameter { Value = ProjectNaming.Schema(projectId) });
        cmd.Parameters.Add(new NpgsqlParameter { Value = anyId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = tx.ToString(System.Globalization.CultureInfo.InvariantCulture), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        var ids = new List<long>();
        var chainOf = new List<int>();
        var chains = new List<(long FirstId, char FirstOp, long LastId, int Length)>();
        var open = new OpenChains<(uint Table, UInt128 Image)>();
        await using (var r = await cmd.ExecuteReaderAsync())
            while (await r.ReadAsync())
            {
                if (ids.Count == MaxFollowedTransaction)
                {
                    TooLarge.Add(1);
                    return new Followed([], [], TooLarge: true);
                }
                var (id, table, op) = (r.GetInt64(0), r.GetFieldValue<uint>(1), r.GetChar(2));
                UInt128? image = r.IsDBNull(3) ? null : System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(r.GetFieldValue<byte[]>(3));
                UInt128? old = r.IsDBNull(4) ? null : System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(r.GetFieldValue<byte[]>(4));
                if (op is 'u' or 'd' && old is { } o && open.TryTake((table, o), out var chain))
                    chains[chain] = chains[chain] with { LastId = id, Length = chains[chain].Length + 1 };
                else
                {
                    chain = chains.Count;
                    chains.Add((id, op, id, 1));
                }
                if (op is not 'd' && image is { } n) open.Add((table, n), chain);
                ids.Add(id);
                chainOf.Add(chain);
            }
        var last = new Dictionary<long, (long, char)>();
        var within = new HashSet<long>();
        for (var i = 0; i < ids.Count; i++)
        {
            var chain = chains[chainOf[i]];
            if (chain.Length == 1) continue;
            if (chain.LastId == ids[i]) last[ids[i]] = (chain.FirstId, chain.FirstOp);
            else within.Add(ids[i]);
        }
        return new Followed(last, within, TooLarge: false);
    }
}
