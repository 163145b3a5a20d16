// Stages 4–5: runs a planned REST request in one round trip on a connection that already acts as the caller's role
// (RestConnections) — a signed-in user's request.* settings batched with the statement in one implicit transaction
// (a failure rolls everything back) — and hands back the response
// head plus PostgreSQL's JSON text as a stream, without materialising rows in .NET.
using System.Buffers;
using System.Data;
using System.Diagnostics;
using System.Text;
using DbStudio.Core.Access;
using DbStudio.Core.Projects;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using DbStudio.Core.Catalog;
using DbStudio.Core.Auth;

namespace DbStudio.Core.Rest;

/// <summary>A response ready to write: status, headers and the UTF-8 JSON body (if any).</summary>
public sealed class RestResponse
{
    public int Status { get; init; }
    public string? ContentRange { get; init; }
    public bool Singular { get; init; }
    public RestError? Error { get; init; }
    public ReadOnlyMemory<byte>? Body { get; init; }
    /// <summary>The body is CSV (Accept: text/csv).</summary>
    public bool Csv { get; init; }
    /// <summary>return=headers-only on POST: the inserted row's address, as PostgREST writes it (`/table?id=eq.1`).</summary>
    public string? Location { get; init; }

    public static RestResponse Fail(int status, RestError error) => new() { Status = status, Error = error };
}

public sealed class RestExecutor(RestConnections connections, SchemaCache schemas, AccessPolicies access, IOptions<DbStudioOptions> options,
    Rest.ICommitObserver commits, ProjectGates gates)
{
    private RestOptions Opt => options.Value.Rest;

    public async Task<RestResponse> ExecuteAsync(RestCaller caller, RestRequest req, CancellationToken ct = default)
    {
        using var activity = Telemetry.Source.StartActivity("rest " + req.Verb.ToString().ToUpperInvariant());
        var started = Stopwatch.GetTimestamp();
        var response = await ExecuteCoreAsync(caller, req, ct);
        var tags = new TagList { { "dbstudio.verb", req.Verb.ToString() }, { "dbstudio.caller", caller.Kind.ToString() }, { "http.response.status_code", response.Status } };
        Telemetry.RestDuration.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, tags);
        if (activity is not null)
        {
            activity.SetTag("dbstudio.project", caller.ProjectId).SetTag("dbstudio.table", req.Table)
                .SetTag("dbstudio.caller", caller.Kind.ToString()).SetTag("http.response.status_code", response.Status);
            if (response.Error is { } e) activity.SetStatus(response.Status >= 500 ? ActivityStatusCode.Error : ActivityStatusCode.Unset, e.Code);
        }
        return response;
    }

    private async Task<RestResponse> ExecuteCoreAsync(RestCaller caller, RestRequest req, CancellationToken ct)
    {
        try
        {
            var table = await schemas.FindTableAsync(caller.ProjectId, req.Table, ct);
            if (table is null)
                return RestResponse.Fail(404, new RestError("PGRST205",
                    $"Could not find the table '{ProjectNaming.Schema(caller.ProjectId)}.{RestParser.Trim(req.Table)}' in the schema cache", null, null));
            var settings = await access.EnsureAsync(caller.ProjectId, table, ct);
            var snapshot = await schemas.GetAsync(caller.ProjectId, ct);
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
            return RestResponse.Fail(e.Status, e.Error);
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
    internal static RestResponse ProjectBusy(RestOptions opt) =>
        RestResponse.Fail(503, new RestError("PGRST003", "Too many requests of this project are running at once",
            $"At most {opt.MaxConcurrentPerProject} run at the same time; this one waited {opt.ProjectQueueTimeout.TotalSeconds:0} s",
            "Retry later, or make the slow queries faster"));

    /// <summary>PostgreSQL refused the statement: its SQLSTATE mapped to HTTP. A server shutting down or restarting
    /// took the pool's other idle connections with it: they are dropped.</summary>
    internal static RestResponse Refused(PostgresException e, RestCaller caller, RestConnections connections)
    {
        if (e.SqlState.StartsWith("57P", StringComparison.Ordinal) || e.SqlState.StartsWith("08", StringComparison.Ordinal)) connections.ClearAll();
        var (status, error) = SqlStateHttp.From(e, caller.IsAnonymous);
        return RestResponse.Fail(status, error);
    }

    /// <summary>
    /// No connection (PostgreSQL down or restarting): drop the pool's broken connections so that the first requests
    /// after the restart do not each find one, and say so — nothing was written. (A pool that stayed busy is not
    /// broken: its connections stay.)
    /// </summary>
    internal static RestResponse Unreachable(NpgsqlException e, RestConnections connections)
    {
        if (e is not RestConnections.BusyException) connections.ClearAll();
        return RestResponse.Fail(503, new RestError("PGRST001", "Could not connect to the database", e.Message,
            "The database is restarting or unreachable; retry in a moment"));
    }

    private async Task<RestResponse> RunAsync(RestCaller caller, RestRequest req, RestPlan plan, CancellationToken ct)
    {
        var role = RoleOf(caller);
        var conn = await connections.RentForRequestAsync(caller.ProjectId, role, ct);
        try { return await RunOnAsync(conn, role, caller, req, plan, ct); }
        finally { connections.Return(conn); }
    }

    private async Task<RestResponse> RunOnAsync(NpgsqlConnection conn, RestRole role, RestCaller caller, RestRequest req, RestPlan plan,
        CancellationToken ct)
    {
        var batch = new NpgsqlBatch(conn);
        NpgsqlTransaction? tx = null;
        try
        {
            // The transaction takes the caller's role; only signed-in users carry claims. Reads run READ ONLY
            // (as PostgREST's do): code of the project's that a read sets off cannot write.
            batch.BatchCommands.Add(PreludeCommand(caller, role, readOnly: !plan.IsWrite));
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
            if (req.Singular && plan.IsWrite || req.Rollback) batch.Transaction = tx = await conn.BeginTransactionAsync(ct);

            long? total = null;
            long page;
            ArrayBufferWriter<byte>? body = null;
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
                    await reader.NextResultAsync(ct);
                }
                (body, page) = plan.PlainColumns is { } plain
                    ? await ReadPlainRowsAsync(reader, plain, req.Singular, ct)
                    : plan.CsvHeader is { } header ? await ReadCsvAsync(reader, header, ct)
                    : await ReadRowsAsync(reader, req.Singular, ct);
            }

            if (req.Singular && page != 1)
            {
                if (tx is not null) await tx.RollbackAsync(ct);
                return RestResponse.Fail(406, new RestError("PGRST116", "JSON object requested, multiple (or no) rows returned",
                    $"The result contains {page} rows", null));
            }
            if (tx is not null)
            {
                if (req.Rollback) await tx.RollbackAsync(ct);
                else await tx.CommitAsync(ct);
            }

            if (plan.IsWrite)
            {
                // Committed: this instance's streams read the log now rather than when PostgreSQL's notification arrives.
                if (!req.Rollback) commits.Committed(caller.ProjectId);
                if (plan.LocationColumns is { } keys)
                    return new RestResponse
                    {
                        Status = 201, Location = LocationOf(req.Table, keys, body), ContentRange = $"*/{(req.Count != CountPref.None ? page : "*")}",
                    };
                return new RestResponse
                {
                    Status = WriteStatus(req, body is not null), Singular = req.Singular, Body = body?.WrittenMemory, Csv = plan.CsvHeader is not null,
                    ContentRange = $"*/{(req.Count != CountPref.None ? page : "*")}",
                };
            }
            if (total is long t && page == 0 && req.Offset > 0 && req.Offset >= t)
                return RestResponse.Fail(416, new RestError("PGRST103", "Requested range not satisfiable",
                    $"An offset of {req.Offset} was requested, but there are only {t} rows.", null));
            var totalText = total?.ToString() ?? "*";
            return new RestResponse
            {
                Status = total is long all && req.Offset + page < all ? 206 : 200,
                ContentRange = page > 0 ? $"{req.Offset}-{req.Offset + page - 1}/{totalText}" : $"*/{totalText}",
                Singular = req.Singular, Body = body?.WrittenMemory, Csv = plan.CsvHeader is not null,
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
                conn.UnprepareAll();
                // Code of the project's that failed half-way may have left the session in another role: set it back.
                await RestConnections.RestoreRoleAsync(conn, caller.ProjectId, role, CancellationToken.None);
            }
            catch (Exception e) when (e is InvalidOperationException or NpgsqlException) { /* broken: dropped */ }
            throw;
        }
        finally
        {
            if (tx is not null) await tx.DisposeAsync();
            if (batch is not null) await batch.DisposeAsync();
        }
    }

    /// <summary>Writes rows of plain values as JSON objects (RowJson), as an array or the single object.</summary>
    private static async Task<(ArrayBufferWriter<byte> Body, long Page)> ReadPlainRowsAsync(NpgsqlDataReader reader,
        IReadOnlyList<PlainColumn> columns, bool singular, CancellationToken ct)
    {
        var body = new ArrayBufferWriter<byte>(4096);
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
            }
            if (!singular) w.WriteEndArray();
            w.Flush();
        }
        return (body, page);
    }

    /// <summary>Joins the rows' JSON texts into one array (or the single object) without parsing them.</summary>
    private static async Task<(ArrayBufferWriter<byte> Body, long Page)> ReadRowsAsync(NpgsqlDataReader reader, bool singular, CancellationToken ct)
    {
        var body = new ArrayBufferWriter<byte>(4096);
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
            while ((read = await column.ReadAsync(body.GetMemory(4096), ct)) > 0) body.Advance(read);
        }
        if (!singular) body.Write("]"u8);
        return (body, page);
    }

    /// <summary>CSV: the header line, then each row's line (PostgreSQL's record text without its parentheses), "\n" between.</summary>
    private static async Task<(ArrayBufferWriter<byte> Body, long Page)> ReadCsvAsync(NpgsqlDataReader reader, string header, CancellationToken ct)
    {
        var body = new ArrayBufferWriter<byte>(4096);
        body.Write(Encoding.UTF8.GetBytes(header));
        long page = 0;
        while (await reader.ReadAsync(ct))
        {
            page++;
            body.Write("\n"u8);
            await using var column = await reader.GetStreamAsync(0, ct);
            int read;
            while ((read = await column.ReadAsync(body.GetMemory(4096), ct)) > 0) body.Advance(read);
        }
        return (body, page);
    }

    /// <summary>`/table?pk=eq.value` from the first written row's primary key (PostgREST's Location header).</summary>
    private static string? LocationOf(string table, IReadOnlyList<string> keys, ArrayBufferWriter<byte>? body)
    {
        if (body is null) return null;
        using var doc = System.Text.Json.JsonDocument.Parse(body.WrittenMemory);
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

    private static int WriteStatus(RestRequest req, bool body) =>
        req.Verb == RestVerb.Post ? 201 : body ? 200 : 204;

    internal static RestRole RoleOf(RestCaller caller) => caller.Kind switch
    {
        CallerKind.Anon => RestRole.Anon,
        CallerKind.User when caller.UserRole == Platform.EndUserRoles.Admin => RestRole.UserAdmin,
        CallerKind.User => RestRole.User,
        _ => RestRole.Owner,
    };

    /// <summary>
    /// The request's settings, transaction-local — they end with the request: the role it acts as (the project's shared
    /// login serves every kind of caller), a signed-in user's id and role for the policies, and read-only for reads.
    /// </summary>
    internal static NpgsqlBatchCommand PreludeCommand(RestCaller caller, RestRole role, bool readOnly)
    {
        var (setRole, roleParameter) = RestConnections.RoleSetting(caller.ProjectId, role, 1);
        var sql = "SELECT " + setRole;
        var cmd = new NpgsqlBatchCommand { Parameters = { roleParameter } };
        if (caller.Kind == CallerKind.User)
        {
            sql += ", set_config('request.user_id', $2, true), set_config('request.user_role', $3, true)";
            cmd.Parameters.Add(new NpgsqlParameter { Value = caller.UserId?.ToString() ?? "", NpgsqlDbType = NpgsqlDbType.Text });
            cmd.Parameters.Add(new NpgsqlParameter { Value = caller.UserRole ?? "", NpgsqlDbType = NpgsqlDbType.Text });
        }
        if (readOnly) sql += ", set_config('transaction_read_only', 'on', true)";
        cmd.CommandText = sql;
        return cmd;
    }
}
