// Stage 4 for RPC: finds the function (FunctionCatalog), plans its call (RpcSql) and runs it on the caller's own login,
// in one round trip with the same request settings as a table request — claims for signed-in users, and READ ONLY for
// STABLE/IMMUTABLE functions and for GET (as PostgREST). Whether the caller may execute the function is PostgreSQL's
// decision (EXECUTE privilege, checked before the function runs): a refusal is its 42501, answered 401/403.
using DbStudio.Core.Auth;
using DbStudio.Core.Catalog;
using DbStudio.Core.Projects;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DbStudio.Core.Rest;

public sealed class RpcExecutor(RestConnections connections, FunctionCatalog functions, IOptions<DbStudioOptions> options,
    ICommitObserver commits, ProjectGates gates)
{
    private RestOptions Opt => options.Value.Rest;

    public async Task<RestResult> ExecuteAsync(RestCaller caller, RpcRequest req, CancellationToken ct = default)
    {
        try
        {
            var fn = await ResolveAsync(caller, req, ct);
            if (!req.IsPost && !fn.IsReadOnly)
                return RestResult.Fail(405, new RestError("PGRST101", $"Cannot use the {(req.Verb == RestVerb.Head ? "HEAD" : "GET")} method on RPC",
                    $"{fn.Schema}.{fn.Name} is VOLATILE: GET runs only STABLE or IMMUTABLE functions",
                    "Call it with POST, or declare it STABLE or IMMUTABLE if it changes nothing"));
            var plan = RpcSql.Build(req, fn, Opt.MaxRows);
            // The project's turn: table requests and RPC share the same gate (Projects/ProjectGates).
            using var turn = await gates.EnterAsync(caller.ProjectId, ct);
            if (turn is null)
                return RestExecutor.ProjectBusy(Opt);
            return await RunAsync(caller, req, plan, ct);
        }
        catch (RestException e)
        {
            return RestResult.Fail(e.Status, e.Error);
        }
        catch (PostgresException e)
        {
            // A function dropped or changed since the catalog was read: read it again for the next call.
            if (e.SqlState is PostgresErrorCodes.UndefinedFunction or PostgresErrorCodes.UndefinedColumn)
                _ = functions.ReloadIfOlderAsync(caller.ProjectId, await functions.GetAsync(caller.ProjectId, CancellationToken.None));
            return RestExecutor.Refused(e, caller, connections);
        }
        catch (NpgsqlException e) when (!ct.IsCancellationRequested)
        {
            return RestExecutor.Unreachable(e, connections);
        }
    }

    /// <summary>The overload the request calls; a miss reads the catalog again once (a function made since, an overload added).</summary>
    private async Task<FunctionInfo> ResolveAsync(RestCaller caller, RpcRequest req, CancellationToken ct)
    {
        var schema = ProjectNaming.Schema(caller.ProjectId);
        var role = RestExecutor.RoleOf(caller);
        bool Visible(FunctionInfo f) => f.ExecutableBy.Contains(role);
        var snapshot = await functions.GetAsync(caller.ProjectId, ct);
        try
        {
            return RpcSql.Resolve(req, schema, snapshot.Named(req.Function), Visible, snapshot.Functions.Values.SelectMany(f => f));
        }
        catch (RestException e) when (e.Error.Code == "PGRST202")
        {
            var fresh = await functions.ReloadIfOlderAsync(caller.ProjectId, snapshot);
            if (ReferenceEquals(fresh, snapshot)) throw;
            return RpcSql.Resolve(req, schema, fresh.Named(req.Function), Visible, fresh.Functions.Values.SelectMany(f => f));
        }
    }

    private async Task<RestResult> RunAsync(RestCaller caller, RpcRequest req, RpcPlan plan, CancellationToken ct)
    {
        var role = RestExecutor.RoleOf(caller);
        var conn = await connections.RentForRequestAsync(caller.ProjectId, role, ct);
        try { return await RunOnAsync(conn, role, caller, req, plan, ct); }
        finally { connections.Return(conn); }
    }

    private async Task<RestResult> RunOnAsync(NpgsqlConnection conn, RestRole role, RestCaller caller, RpcRequest req, RpcPlan plan,
        CancellationToken ct)
    {
        var batch = new NpgsqlBatch(conn);
        NpgsqlTransaction? tx = null;
        try
        {
            batch.BatchCommands.Add(RestExecutor.PreludeCommand(caller, role, readOnly: !plan.IsWrite, options.Value.Rest.StatementTimeout));
            // The function's body names the project's objects as the owner wrote them in the console (search_path = the
            // project's schema), so the call runs with that search_path, transaction-local (as PostgREST sets it).
            batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT pg_catalog.set_config('search_path', $1, true)")
            {
                Parameters = { new NpgsqlParameter { Value = Sql.SqlText.Ident(plan.Function.Schema) } },
            });
            var main = new NpgsqlBatchCommand(plan.Sql);
            foreach (var p in plan.Parameters) main.Parameters.Add(p);
            batch.BatchCommands.Add(main);
            // What a function does to the session's role ends here: each request sets its own, for its transaction only.
            // A write asked for as one object is checked before commit and rolled back otherwise (PGRST116).
            // A write commits only once its answer is known to be within MaxResponseBytes: refused, it writes nothing.
            // Prefer: tx=rollback runs the call and commits nothing (as REST does).
            if (plan.IsWrite || req.Read.Rollback) batch.Transaction = tx = await conn.BeginTransactionAsync(ct);

            long? total;
            long page;
            byte[]? body;
            // Read as it arrives, within MaxResponseBytes (a function can answer a great deal).
            await using (var reader = await batch.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct))
            {
                await reader.NextResultAsync(ct); // the prelude
                await reader.NextResultAsync(ct); // search_path
                await reader.ReadAsync(ct);
                total = await reader.IsDBNullAsync(0, ct) ? null : reader.GetInt64(0);
                page = reader.GetInt64(1);
                body = await RestExecutor.ReadBoundedAsync(reader, 2, options.Value.Rest.MaxResponseBytes, ct);
            }
            var fn = plan.Function;
            if (req.Read.Singular && (fn.ReturnsSet || fn.Returns == FunctionReturn.Rows) && page != 1)
            {
                if (tx is not null) await tx.RollbackAsync(ct);
                return RestResult.Fail(406, new RestError("PGRST116", "Cannot coerce the result to a single JSON object",
                    $"The result contains {page} rows", null));
            }
            if (tx is not null)
            {
                if (req.Read.Rollback) await tx.RollbackAsync(ct);
                else await tx.CommitAsync(ct);
            }
            if (plan.IsWrite && !req.Read.Rollback) commits.Committed(caller.ProjectId); // the function's writes reach the streams now

            var applied = new AppliedPreferences
            {
                Count = req.Read.Count, SingleObject = req.SingleObject,
                Tx = req.Read.Rollback ? TxPref.Rollback : req.Read.CommitAsked ? TxPref.Commit : TxPref.Unset,
            };
            if (fn.Returns == FunctionReturn.Void) return new RestResult { Outcome = RestOutcome.Nothing, Applied = applied };
            var bytes = body ?? "null"u8.ToArray();
            var format = req.Read.Singular ? BodyFormat.Object : BodyFormat.Json;
            if (!fn.ReturnsSet)
                return new RestResult { Outcome = RestOutcome.Value, Rows = 1, Body = bytes, Format = format, Applied = applied };
            var offset = req.Read.Offset;
            if (total is long t && page == 0 && offset > 0 && offset >= t)
                return RestResult.Fail(416, new RestError("PGRST103", "Requested range not satisfiable",
                    $"An offset of {offset} was requested, but there are only {t} rows.", null));
            return new RestResult
            {
                Outcome = RestOutcome.Page, Rows = page, Offset = offset, Total = total, Body = bytes, Format = format, Applied = applied,
            };
        }
        catch (PostgresException)
        {
            // As RestExecutor: forget prepared statements after an error, and put back the role project code may have changed.
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
}
