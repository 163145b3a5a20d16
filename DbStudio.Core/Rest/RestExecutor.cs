// Stages 4–5: runs a planned REST request in one round trip — role and request.* settings batched with the
// statement in one implicit transaction (a failure rolls everything back) — and hands back the response
// head plus PostgreSQL's JSON text as a stream, without materialising rows in .NET.
using System.Data;
using DbStudio.Core.Access;
using DbStudio.Core.Projects;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace DbStudio.Core.Rest;

/// <summary>The pool REST and SSE requests use: the platform role, switching role per transaction.</summary>
public sealed class RestDataSource(NpgsqlDataSource source) : IAsyncDisposable
{
    public NpgsqlDataSource Source { get; } = source;

    public static RestDataSource Create(string platformConnectionString, int maxPoolSize)
    {
        var csb = new NpgsqlConnectionStringBuilder(platformConnectionString)
        {
            ApplicationName = "dbstudio-rest",
            MaxPoolSize = maxPoolSize,
            // Role and settings are transaction-local (set_config(…, true)), so nothing needs resetting.
            NoResetOnClose = true,
            // No auto-prepare: with Npgsql 10.0.3, a batch statement that fails (e.g. permission denied) can leave
            // the auto-prepare state of the connection inconsistent, and a later request with the same SQL text then
            // fails with "Received unexpected backend message DataRow" (reproduced by PolicyMatrixTests).
            MaxAutoPrepare = 0,
            Timezone = "UTC",
        };
        return new RestDataSource(new NpgsqlDataSourceBuilder(csb.ConnectionString) { Name = "rest" }.Build());
    }

    public ValueTask DisposeAsync() => Source.DisposeAsync();
}

public sealed class RestOptions
{
    /// <summary>Most rows one response carries (PostgREST's db-max-rows).</summary>
    public long MaxRows { get; set; } = 1000;
    public TimeSpan StatementTimeout { get; set; } = TimeSpan.FromSeconds(10);
    public int PoolSize { get; set; } = 64;
    /// <summary>Largest request body accepted, in bytes.</summary>
    public long MaxBodyBytes { get; set; } = 10 * 1024 * 1024;
}

/// <summary>A response ready to write: status and headers, then the body stream (if any). Dispose when written.</summary>
public sealed class RestResponse : IAsyncDisposable
{
    public int Status { get; init; }
    public string? ContentRange { get; init; }
    public bool Singular { get; init; }
    public RestError? Error { get; init; }
    public Stream? Body { get; init; }
    public string? BodyText { get; init; }
    internal IAsyncDisposable? Owner { get; init; }
    internal IAsyncDisposable? Connection { get; init; }

    public async ValueTask DisposeAsync()
    {
        if (Body is not null) await Body.DisposeAsync();
        if (Owner is not null) await Owner.DisposeAsync();
        if (Connection is not null) await Connection.DisposeAsync();
    }

    public static RestResponse Fail(int status, RestError error) => new() { Status = status, Error = error };
}

public sealed class RestExecutor(RestDataSource rest, SchemaCache schemas, AccessPolicies access, IOptions<DbStudioOptions> options)
{
    private RestOptions Opt => options.Value.Rest;

    public async Task<RestResponse> ExecuteAsync(RestCaller caller, RestRequest req, CancellationToken ct = default)
    {
        try
        {
            var table = await schemas.FindTableAsync(caller.ProjectId, req.Table, ct);
            if (table is null)
                return RestResponse.Fail(404, new RestError("PGRST205",
                    $"Could not find the table '{ProjectNaming.Schema(caller.ProjectId)}.{RestParser.Trim(req.Table)}' in the schema cache", null, null));
            var settings = await access.EnsureAsync(caller.ProjectId, table, ct);
            RestPlan plan;
            try { plan = RestSql.Build(req, table, caller, settings.user_id_col, Opt.MaxRows); }
            catch (RestException e) when (e.Error.Code == "42703")
            {
                // A column added since the cache was loaded (console, direct connection)? Reload once.
                schemas.Invalidate(caller.ProjectId);
                table = await schemas.FindTableAsync(caller.ProjectId, req.Table, ct) ?? throw e;
                plan = RestSql.Build(req, table, caller, settings.user_id_col, Opt.MaxRows);
            }
            return await RunAsync(caller, req, plan, ct);
        }
        catch (RestException e)
        {
            return RestResponse.Fail(e.Status, e.Error);
        }
        catch (PostgresException e)
        {
            if (e.SqlState is PostgresErrorCodes.UndefinedColumn or PostgresErrorCodes.UndefinedTable) schemas.Invalidate(caller.ProjectId);
            var (status, error) = SqlStateHttp.From(e, caller.IsAnonymous);
            return RestResponse.Fail(status, error);
        }
    }

    private async Task<RestResponse> RunAsync(RestCaller caller, RestRequest req, RestPlan plan, CancellationToken ct)
    {
        var conn = await rest.Source.OpenConnectionAsync(ct);
        try
        {
            var batch = new NpgsqlBatch(conn);
            batch.BatchCommands.Add(SettingsCommand(caller));
            var main = new NpgsqlBatchCommand(plan.Sql);
            foreach (var p in plan.Parameters) main.Parameters.Add(p);
            batch.BatchCommands.Add(main);

            if (req.Singular && plan.IsWrite) return await RunSingularWriteAsync(conn, batch, req, plan, ct);

            if (!plan.ReturnsRow)
            {
                await using (batch) await batch.ExecuteNonQueryAsync(ct);
                var affected = Math.Max(0, main.RecordsAffected);
                await conn.DisposeAsync();
                return new RestResponse { Status = WriteStatus(req, body: false), ContentRange = $"*/{(req.Count != CountPref.None ? affected : "*")}" };
            }

            var reader = await batch.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
            await reader.NextResultAsync(ct);
            await reader.ReadAsync(ct);
            long? total = await reader.IsDBNullAsync(0, ct) ? null : reader.GetInt64(0);
            var page = reader.GetInt64(1);
            var owner = new ReaderOwner(reader, batch);

            if (req.Singular && page != 1)
            {
                await owner.DisposeAsync();
                await conn.DisposeAsync();
                return RestResponse.Fail(406, new RestError("PGRST116", "JSON object requested, multiple (or no) rows returned",
                    $"The result contains {page} rows", null));
            }
            if (!plan.IsWrite && total is long t && page == 0 && req.Offset > 0 && req.Offset >= t && t >= 0)
            {
                await owner.DisposeAsync();
                await conn.DisposeAsync();
                return RestResponse.Fail(416, new RestError("PGRST103", "Requested range not satisfiable",
                    $"An offset of {req.Offset} was requested, but there are only {t} rows.", null));
            }
            var body = plan.ReturnsBody && !await reader.IsDBNullAsync(2, ct) ? reader.GetStream(2) : null;
            var totalText = total?.ToString() ?? "*";
            var range = plan.IsWrite ? $"*/{(req.Count != CountPref.None ? page : "*")}"
                : page > 0 ? $"{req.Offset}-{req.Offset + page - 1}/{totalText}" : $"*/{totalText}";
            var status = plan.IsWrite ? WriteStatus(req, plan.ReturnsBody)
                : total is long all && req.Offset + page < all ? 206 : 200;
            return new RestResponse
            {
                Status = status, ContentRange = range, Singular = req.Singular, Body = body, Owner = owner, Connection = conn,
            };
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }

    /// <summary>A write asking for exactly one object: checked before commit, rolled back otherwise (PGRST116).</summary>
    private static async Task<RestResponse> RunSingularWriteAsync(NpgsqlConnection conn, NpgsqlBatch batch, RestRequest req, RestPlan plan, CancellationToken ct)
    {
        await using (conn)
        await using (batch)
        {
            await using var tx = await conn.BeginTransactionAsync(ct);
            batch.Transaction = tx;
            long page;
            string? body = null;
            if (plan.ReturnsRow)
            {
                await using var reader = await batch.ExecuteReaderAsync(ct);
                await reader.NextResultAsync(ct);
                await reader.ReadAsync(ct);
                page = reader.GetInt64(1);
                if (plan.ReturnsBody && !reader.IsDBNull(2)) body = reader.GetString(2);
            }
            else
            {
                await batch.ExecuteNonQueryAsync(ct);
                page = Math.Max(0, batch.BatchCommands[1].RecordsAffected);
            }
            if (page != 1)
            {
                await tx.RollbackAsync(ct);
                return RestResponse.Fail(406, new RestError("PGRST116", "JSON object requested, multiple (or no) rows returned",
                    $"The result contains {page} rows", null));
            }
            await tx.CommitAsync(ct);
            return new RestResponse { Status = WriteStatus(req, body is not null), Singular = true, BodyText = body, ContentRange = "*/*" };
        }
    }

    private static int WriteStatus(RestRequest req, bool body) =>
        req.Verb == RestVerb.Post ? 201 : body ? 200 : 204;

    private NpgsqlBatchCommand SettingsCommand(RestCaller caller)
    {
        var role = caller.Kind switch
        {
            CallerKind.Anon => ProjectNaming.AnonRole(caller.ProjectId),
            CallerKind.User when caller.UserRole == Platform.EndUserRoles.Admin => ProjectNaming.UserAdminRole(caller.ProjectId),
            CallerKind.User => ProjectNaming.UserRole(caller.ProjectId),
            _ => ProjectNaming.OwnerRole(caller.ProjectId),
        };
        var cmd = new NpgsqlBatchCommand(
            "SELECT set_config('role', $1, true), set_config('request.user_id', $2, true), " +
            "set_config('request.user_role', $3, true), set_config('statement_timeout', $4, true)");
        cmd.Parameters.Add(new NpgsqlParameter { Value = role, NpgsqlDbType = NpgsqlDbType.Text });
        cmd.Parameters.Add(new NpgsqlParameter { Value = caller.UserId?.ToString() ?? "", NpgsqlDbType = NpgsqlDbType.Text });
        cmd.Parameters.Add(new NpgsqlParameter { Value = caller.UserRole ?? "", NpgsqlDbType = NpgsqlDbType.Text });
        cmd.Parameters.Add(new NpgsqlParameter { Value = ((int)Opt.StatementTimeout.TotalMilliseconds).ToString(), NpgsqlDbType = NpgsqlDbType.Text });
        return cmd;
    }

    private sealed class ReaderOwner(NpgsqlDataReader reader, NpgsqlBatch batch) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await reader.DisposeAsync();
            await batch.DisposeAsync();
        }
    }
}
