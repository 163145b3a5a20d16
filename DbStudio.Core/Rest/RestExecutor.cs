// Stages 4–5: runs a planned REST request in one round trip on a connection that already acts as the caller's role
// (RestConnections) — a signed-in user's request.* settings batched with the statement in one implicit transaction
// (a failure rolls everything back; reads are READ ONLY) — and hands back a typed RestResult: PostgreSQL's JSON text
// copied as it is (rows are not materialised in .NET), how many rows of how many, and the preferences applied. HTTP
// status and headers are Web's (Web/Apis/RestResponses).
using System.Buffers;
using CommunityToolkit.HighPerformance.Buffers;
using System.Data;
using System.Text;
using DbStudio.Core.Access;
using DbStudio.Core.Projects;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using DbStudio.Core.Catalog;
using DbStudio.Core.Auth;

namespace DbStudio.Core.Rest;

public sealed class RestExecutor(RestConnections connections, SchemaCache schemas, AccessPolicies access, IOptions<DbStudioOptions> options,
    Rest.ICommitObserver commits, ProjectGates gates)
{
    private RestOptions Opt => options.Value.Rest;

    public async Task<RestResult> ExecuteAsync(RestCaller caller, RestRequest req, CancellationToken ct = default)
    {
        try
        {
            var snapshot = await schemas.GetAsync(caller.ProjectId, ct);
            // A table the snapshot does not know: looked for again in a reloaded catalog (at most a few times a second).
            if (!snapshot.Tables.TryGetValue(req.Table, out var table)
                && (table = await schemas.FindTableAsync(caller.ProjectId, req.Table, ct)) is not null)
                snapshot = await schemas.GetAsync(caller.ProjectId, ct);
            if (table is null)
                return RestResult.Fail(404, new RestError("PGRST205",
                    $"Could not find the table '{ProjectNaming.Schema(caller.ProjectId)}.{RestParser.Trim(req.Table)}' in the schema cache", null, null));
            var settings = await access.EnsureAsync(caller.ProjectId, table, ct);
            RestPlan plan;
            try { plan = RestSql.Build(req, table, caller, settings.user_id_col, Opt.MaxRows, snapshot); }
            catch (RestException e) when (e.Error.Code is "42703" or "PGRST200")
            {
                // A column, table or foreign key added since the cache was loaded (console, direct connection)? Reload —
                // at most a few times a second per project, so a stream of bad names cannot keep the catalog busy.
                var reloaded = await schemas.ReloadIfOlderAsync(caller.ProjectId, snapshot);
                if (ReferenceEquals(reloaded, snapshot) || !reloaded.Tables.TryGetValue(req.Table, out var fresh)) throw;
                plan = RestSql.Build(req, fresh, caller, settings.user_id_col, Opt.MaxRows, reloaded);
                snapshot = reloaded;
            }
            // Tables made outside the platform get their secure defaults before anything reads them, embedded ones too.
            foreach (var name in plan.EmbeddedTables)
                if (snapshot.Tables.TryGetValue(name, out var embedded)) await access.EnsureAsync(caller.ProjectId, embedded, ct);
            using var turn = await gates.EnterAsync(caller.ProjectId, ct);
            if (turn is null)
                return ProjectBusy(Opt);
            return await RunAsync(caller, req, plan, ct);
        }
        catch (RestException e)
        {
            return RestResult.Fail(e.Status, e.Error);
        }
        catch (PostgresException e)
        {
            if (e.SqlState is PostgresErrorCodes.UndefinedColumn or PostgresErrorCodes.UndefinedTable)
                _ = schemas.ReloadIfOlderAsync(caller.ProjectId, await schemas.GetAsync(caller.ProjectId, CancellationToken.None));
            return Refused(e, caller, connections);
        }
        catch (NpgsqlException e) when (!ct.IsCancellationRequested)
        {
            return Unreachable(e, connections);
        }
    }

    // ---- failures shared with RPC (RpcExecutor) ----------------------------------------------------------

    /// <summary>The project's gate stayed full for the queue timeout.</summary>
    internal static RestResult ProjectBusy(RestOptions opt) =>
        RestResult.Fail(503, new RestError("PGRST003", "Too many requests of this project are running at once",
            $"At most {opt.MaxConcurrentPerProject} run at the same time; this one waited {opt.ProjectQueueTimeout.TotalSeconds:0} s",
            "Retry later, or make the slow queries faster"));

    /// <summary>PostgreSQL refused the statement: its SQLSTATE mapped to HTTP. A server shutting down or restarting
    /// took the pool's other idle connections with it: they are dropped.</summary>
    internal static RestResult Refused(PostgresException e, RestCaller caller, RestConnections connections)
    {
        if (e.SqlState.StartsWith("57P", StringComparison.Ordinal) || e.SqlState.StartsWith("08", StringComparison.Ordinal)) connections.ClearAll();
        var (status, error) = SqlStateHttp.From(e, caller.IsAnonymous);
        return RestResult.Fail(status, error);
    }

    /// <summary>
    /// No connection (PostgreSQL down or restarting): drop the pool's broken connections so that the first requests
    /// after the restart do not each find one, and say so — nothing was written. (A pool that stayed busy is not
    /// broken: its connections stay.)
    /// </summary>
    internal static RestResult Unreachable(NpgsqlException e, RestConnections connections)
    {
        if (e is not RestConnections.BusyException) connections.ClearAll();
        return RestResult.Fail(503, new RestError("PGRST001", "Could not connect to the database", e.Message,
            "The database is restarting or unreachable; retry in a moment"));
    }

    /// <summary>Rents a connection of the caller's login, runs the plan on it in one round trip and gives it back.</summary>
    private async Task<RestResult> RunAsync(RestCaller caller, RestRequest req, RestPlan plan, CancellationToken ct)
    {
        var role = RoleOf(caller);
        var conn = await connections.RentForRequestAsync(caller.ProjectId, role, ct);
        var batch = new NpgsqlBatch(conn);
        NpgsqlTransaction? tx = null;
        try
        {
            // The transaction takes the caller's role; only signed-in users carry claims. Reads run READ ONLY
            // (as PostgREST's do): code of the project's that a read sets off cannot write.
            batch.BatchCommands.Add(PreludeCommand(caller, role, readOnly: !plan.IsWrite, Opt.StatementTimeout));
            if (plan.CountSql is not null)
            {
                var count = new NpgsqlBatchCommand(plan.CountSql);
                foreach (var p in plan.Parameters.Take(plan.CountParameters)) count.Parameters.Add(p.Clone());
                batch.BatchCommands.Add(count);
            }
            var main = new NpgsqlBatchCommand(plan.Sql);
            foreach (var p in plan.Parameters) main.Parameters.Add(p);
            batch.BatchCommands.Add(main);
            // A write asking for exactly one object is checked before commit and rolled back otherwise (PGRST116);
            // Prefer: tx=rollback runs everything and commits nothing.
            // A write answering with JSON rows or CSV (embeds can multiply them) commits only once its answer is within
            // MaxResponseBytes: refused, it writes nothing.
            if (req.Singular && plan.IsWrite || req.Rollback || plan.IsWrite && plan.ReturnsRows && plan.PlainColumns is null)
                batch.Transaction = tx = await conn.BeginTransactionAsync(ct);

            long? total = null;
            var estimated = false;
            long page;
            byte[]? body = null;
            if (!plan.ReturnsRows)
            {
                await batch.ExecuteNonQueryAsync(ct);
                page = Math.Max(0, main.RecordsAffected);
            }
            else
            {
                // Plain columns are read value by value from the buffered row; row_to_json texts stream out.
                await using var reader = await batch.ExecuteReaderAsync(
                    plan.PlainColumns is null ? CommandBehavior.SequentialAccess : CommandBehavior.Default, ct);
                await reader.NextResultAsync(ct); // the prelude
                if (plan.CountSql is not null)
                {
                    await reader.ReadAsync(ct);
                    total = await reader.IsDBNullAsync(0, ct) ? null : reader.GetInt64(0);
                    // count=planned|estimated: the second column says whether the planner's estimate stood in
                    estimated = reader.FieldCount > 1 && reader.GetBoolean(1);
                    await reader.NextResultAsync(ct);
                }
                (body, page) = plan.PlainColumns is { } plain
                    ? await ReadPlainRowsAsync(reader, plain, req.Singular, Opt.MaxResponseBytes, ct)
                    : plan.CsvHeader is { } header ? await ReadCsvAsync(reader, header, Opt.MaxResponseBytes, ct)
                    : await ReadRowsAsync(reader, req.Singular, Opt.MaxResponseBytes, ct);
            }

            if (req.Singular && page != 1)
            {
                if (tx is not null) await tx.RollbackAsync(ct);
                return RestResult.Fail(406, new RestError("PGRST116", "JSON object requested, multiple (or no) rows returned",
                    $"The result contains {page} rows", null));
            }
            if (tx is not null)
            {
                if (req.Rollback) await tx.RollbackAsync(ct);
                else await tx.CommitAsync(ct);
            }

            var format = plan.CsvHeader is not null ? BodyFormat.Csv : req.Singular ? BodyFormat.Object : BodyFormat.Json;
            if (plan.IsWrite)
            {
                // Committed: this instance's streams read the log now rather than when PostgreSQL's notification arrives.
                if (!req.Rollback) commits.Committed(caller.ProjectId);
                var location = plan.LocationColumns is { } keys ? LocationOf(req.Table, keys, body) : null;
                return new RestResult
                {
                    Outcome = req.Verb == RestVerb.Post ? RestOutcome.Created : RestOutcome.Changed, Rows = page,
                    Total = req.Count != CountPref.None ? page : null, Location = location, Applied = Applied(req),
                    // headers-only: the address, no body
                    Body = plan.LocationColumns is null ? AsBody(body) : null, Format = plan.LocationColumns is null ? format : BodyFormat.Json,
                };
            }
            if (total is long t && page == 0 && req.Offset > 0 && req.Offset >= t)
                return RestResult.Fail(416, new RestError("PGRST103", "Requested range not satisfiable",
                    $"An offset of {req.Offset} was requested, but there are only {t} rows.", null));
            return new RestResult
            {
                Outcome = RestOutcome.Page, Rows = page, Offset = req.Offset, Total = total, TotalIsEstimate = estimated,
                Applied = Applied(req), Body = AsBody(body), Format = format,
            };
        }
        catch (PostgresException)
        {
            // Npgsql 10.0.3 can keep a statement that failed while being auto-prepared marked as prepared without
            // its row description; the next request with the same SQL on this connection then fails ("unexpected
            // backend message DataRow"). Errors are the rare path: forget this connection's prepared statements.
            await batch.DisposeAsync();
            batch = null;
            try
            {
                // An explicit transaction, aborted by the error, ends first: nothing else runs in it.
                if (tx is not null)
                {
                    await tx.DisposeAsync();
                    tx = null;
                }
                conn.UnprepareAll();
                // Code of the project's that failed half-way may have left the session in another role: set it back.
                await RestConnections.RestoreRoleAsync(conn, caller.ProjectId, role, CancellationToken.None);
            }
            catch (Exception e) when (e is InvalidOperationException or NpgsqlException) { /* broken: dropped */ }
            throw;
        }
        finally
        {
            try
            {
                if (tx is not null) await tx.DisposeAsync();
                if (batch is not null) await batch.DisposeAsync();
            }
            finally { connections.Return(conn); }
        }
    }

    /// <summary>
    /// The body is written into a buffer rented from the shared pool and handed back as an array of its exact size: a
    /// one-row answer takes a few hundred bytes instead of a 4 KB buffer, and a page is not copied each time it grows.
    /// </summary>
    private const int BodyScratch = 4096;

    /// <summary>
    /// The pool the bodies are written in: its own, keeping buffers of up to 1 MB. A larger body (wide jsonb rows) gets a
    /// buffer of its own that is not kept — the shared pool would hold on to arrays of up to a gigabyte until a full GC.
    /// </summary>
    private static readonly ArrayPool<byte> BodyPool = ArrayPool<byte>.Create(maxArrayLength: 1024 * 1024,
        maxArraysPerBucket: 8 * Environment.ProcessorCount);

    /// <summary>No rows read (a plain write): no body — not an empty one (a null array would convert to an empty memory).</summary>
    private static ReadOnlyMemory<byte>? AsBody(byte[]? body) => body is null ? default(ReadOnlyMemory<byte>?) : new ReadOnlyMemory<byte>(body);

    /// <summary>Writes rows of plain values as JSON objects (RowJson), as an array or the single object.</summary>
    /// <summary>One text column's bytes as they arrive (sequential access), null for NULL; refused past <paramref name="max"/>.</summary>
    internal static async Task<byte[]?> ReadBoundedAsync(NpgsqlDataReader reader, int ordinal, long max, CancellationToken ct)
    {
        if (await reader.IsDBNullAsync(ordinal, ct)) return null;
        using var body = new ArrayPoolBufferWriter<byte>(BodyPool, BodyScratch);
        await using var column = await reader.GetStreamAsync(ordinal, ct);
        int read;
        while ((read = await column.ReadAsync(body.GetMemory(4096), ct)) > 0)
        {
            body.Advance(read);
            if (body.WrittenCount > max) throw TooLarge(max);
        }
        return body.WrittenSpan.ToArray();
    }

    /// <summary>The answer would be larger than <see cref="RestOptions.MaxResponseBytes"/>.</summary>
    internal static RestException TooLarge(long max) => new(400, "DBS001", $"The response is larger than {max:N0} bytes",
        null, "Select fewer columns or embedded resources, or fewer rows (limit); the limit is the server's Rest:MaxResponseBytes");

    private static async Task<(byte[] Body, long Page)> ReadPlainRowsAsync(NpgsqlDataReader reader,
        IReadOnlyList<PlainColumn> columns, bool singular, long max, CancellationToken ct)
    {
        using var body = new ArrayPoolBufferWriter<byte>(BodyPool, BodyScratch);
        long page = 0;
        using (var w = RowJson.CreateWriter(body))
        {
            if (!singular) w.WriteStartArray();
            while (await reader.ReadAsync(ct))
            {
                page++;
                if (singular && page > 1) continue; // counted, not kept: the answer is a 406
                w.WriteStartObject();
                for (var i = 0; i < columns.Count; i++)
                {
                    w.WritePropertyName(columns[i].Key);
                    RowJson.WriteValue(w, reader, i, columns[i].Kind);
                }
                w.WriteEndObject();
                if (w.BytesCommitted + w.BytesPending > max) throw TooLarge(max);
            }
            if (!singular) w.WriteEndArray();
            w.Flush();
        }
        return (body.WrittenSpan.ToArray(), page);
    }

    /// <summary>Joins the rows' JSON texts into one array (or the single object) without parsing them.</summary>
    private static async Task<(byte[] Body, long Page)> ReadRowsAsync(NpgsqlDataReader reader, bool singular, long max, CancellationToken ct)
    {
        using var body = new ArrayPoolBufferWriter<byte>(BodyPool, BodyScratch);
        long page = 0;
        if (!singular) body.Write("["u8);
        while (await reader.ReadAsync(ct))
        {
            page++;
            if (singular && page > 1) continue; // counted, not kept: the answer is a 406
            if (page > 1) body.Write(","u8);
            // The row's JSON arrives as UTF-8 text: copy its bytes as they are, no string in between.
            await using var column = await reader.GetStreamAsync(0, ct);
            int read;
            while ((read = await column.ReadAsync(body.GetMemory(4096), ct)) > 0)
            {
                body.Advance(read);
                if (body.WrittenCount > max) throw TooLarge(max);
            }
        }
        if (!singular) body.Write("]"u8);
        return (body.WrittenSpan.ToArray(), page);
    }

    /// <summary>CSV: the header line, then each row's line (PostgreSQL's record text without its parentheses), "\n" between.</summary>
    private static async Task<(byte[] Body, long Page)> ReadCsvAsync(NpgsqlDataReader reader, string header, long max, CancellationToken ct)
    {
        using var body = new ArrayPoolBufferWriter<byte>(BodyPool, BodyScratch);
        body.Write(Encoding.UTF8.GetBytes(header));
        long page = 0;
        while (await reader.ReadAsync(ct))
        {
            page++;
            body.Write("\n"u8);
            await using var column = await reader.GetStreamAsync(0, ct);
            int read;
            while ((read = await column.ReadAsync(body.GetMemory(4096), ct)) > 0)
            {
                body.Advance(read);
                if (body.WrittenCount > max) throw TooLarge(max);
            }
        }
        return (body.WrittenSpan.ToArray(), page);
    }

    /// <summary>`/table?pk=eq.value` from the first written row's primary key (PostgREST's Location header).</summary>
    private static string? LocationOf(string table, IReadOnlyList<string> keys, byte[]? body)
    {
        if (body is null) return null;
        using var doc = System.Text.Json.JsonDocument.Parse(body);
        if (doc.RootElement.GetArrayLength() == 0) return null;
        var row = doc.RootElement[0];
        var query = keys.Select(k => Uri.EscapeDataString(k) + "=eq." + Uri.EscapeDataString(row.GetProperty(k) switch
        {
            { ValueKind: System.Text.Json.JsonValueKind.String } v => v.GetString()!,
            { ValueKind: System.Text.Json.JsonValueKind.Null } => "",
            var v => v.GetRawText(),
        }));
        return "/" + Uri.EscapeDataString(table) + "?" + string.Join("&", query);
    }

    /// <summary>
    /// The preferences this request ran with, in PostgREST's sense: resolution and missing=default only where rows were
    /// inserted (POST), return=headers-only only on POST (no other verb answers with headers only), tx as asked.
    /// </summary>
    private static AppliedPreferences Applied(RestRequest req) => req is
    {
        Count: CountPref.None, Return: ReturnPref.Default, Resolution: ResolutionPref.None, MissingDefault: false, Rollback: false,
        CommitAsked: false,
    } ? AppliedPreferences.None : new()
    {
        Resolution = req.Verb == RestVerb.Post ? req.Resolution : ResolutionPref.None,
        MissingDefault = req.MissingDefault && req.Verb == RestVerb.Post,
        Return = req.Return == ReturnPref.HeadersOnly && req.Verb != RestVerb.Post ? ReturnPref.Default : req.Return,
        Count = req.Count,
        Tx = req.Rollback ? TxPref.Rollback : req.CommitAsked ? TxPref.Commit : TxPref.Unset,
    };

    internal static RestRole RoleOf(RestCaller caller) => caller.Kind switch
    {
        CallerKind.Anon => RestRole.Anon,
        CallerKind.User when caller.UserRole == Platform.EndUserRoles.Admin => RestRole.UserAdmin,
        CallerKind.User => RestRole.User,
        _ => RestRole.Owner,
    };

    /// <summary>
    /// The request's settings, transaction-local — they end with the request: the role it acts as (the project's shared
    /// login serves every kind of caller), the caller's claims for the policies (empty ones for callers who are not
    /// signed in), read-only for reads, and — given <paramref name="statementTimeout"/> — the statement timeout, which
    /// code of the project's may have changed for the whole session (set_config(…, false)).
    /// </summary>
    internal static NpgsqlBatchCommand PreludeCommand(RestCaller caller, RestRole role, bool readOnly, TimeSpan? statementTimeout = null)
    {
        var (_, roleParameter) = RestConnections.RoleSetting(caller.ProjectId, role, 1);
        var user = caller.Kind == CallerKind.User;
        var cmd = new NpgsqlBatchCommand(Preludes[(user ? 2 : 0) + (readOnly ? 1 : 0) + (statementTimeout is null ? 0 : 4)])
            { Parameters = { roleParameter } };
        if (user)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = caller.UserId?.ToString() ?? "", NpgsqlDbType = NpgsqlDbType.Text });
            cmd.Parameters.Add(new NpgsqlParameter { Value = caller.UserRole ?? "", NpgsqlDbType = NpgsqlDbType.Text });
        }
        if (statementTimeout is { } timeout)
            cmd.Parameters.Add(new NpgsqlParameter { Value = TimeoutText(timeout), NpgsqlDbType = NpgsqlDbType.Text });
        return cmd;
    }

    /// <summary>The timeout in milliseconds as set_config takes it (made once per value: it is the same for every request;
    /// kept as one object, so a reader never sees one value's timeout with another's text).</summary>
    private static string TimeoutText(TimeSpan timeout)
    {
        if (_timeoutText is { } last && last.Timeout == timeout) return last.Text;
        var made = new TimeoutSetting(timeout, ((long)timeout.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture));
        _timeoutText = made;
        return made.Text;
    }
    private sealed record TimeoutSetting(TimeSpan Timeout, string Text);
    private static TimeoutSetting? _timeoutText;

    /// <summary>The prelude's text for (statement timeout?, signed-in user?, read only?), made once: the role is $1, a
    /// user's claims $2 and $3, the timeout the last parameter.</summary>
    private static readonly string[] Preludes =
    [
        .. from timeout in new[] { false, true }
           from user in new[] { false, true }
           from readOnly in new[] { false, true }
           select "SELECT " + RestConnections.RoleSetting("", RestRole.Anon, 1).Sql
                  // Every caller's claims are set, empty ones for callers who are not signed in: a session-level value that
                  // code of the project's left on the shared login (set_config(…, false)) is never what the next caller's
                  // policies read (as PostgREST sets its claims on every request).
                  + (user ? ", pg_catalog.set_config('request.user_id', $2, true), pg_catalog.set_config('request.user_role', $3, true)"
                          : ", pg_catalog.set_config('request.user_id', '', true), pg_catalog.set_config('request.user_role', '', true)")
                  + (readOnly ? ", pg_catalog.set_config('transaction_read_only', 'on', true)" : "")
                  + (timeout ? $", pg_catalog.set_config('statement_timeout', ${(user ? 4 : 2)}, true)" : ""),
    ];
}
