// The confined SQL engine: runs a person's SQL script as proj_{id}_owner (search_path proj_{id}),
// statement by statement like psql, with the app's own deadline and a cap on rows kept.
using System.Data;
using StatementType = Npgsql.StatementType;
using System.Diagnostics;
using DbStudio.Core.Access;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Core.Sql;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using DbStudio.Core.Catalog;

namespace DbStudio.Core.Console;

/// <summary>A statement run as a REST caller (<see cref="SqlConsole.RunAsAsync"/>): its result, and the project's tables its
/// plan reads (for the policies that decided what it got).</summary>
public sealed record ViewAsRun(StatementResult Result, IReadOnlyList<string> Tables);

public sealed class SqlConsole(OwnerConnections owners, SchemaCache schemas, AccessPolicies access, Streams.ChangeCapture capture, SqlHistory history,
    IOptions<DbStudioOptions> options, ILogger<SqlConsole> log, FunctionCatalog functions, RestConnections connections)
{
    private readonly ConsoleOptions _opt = options.Value.Console;
    private readonly int _ownerLimit = options.Value.OwnerConnectionLimit;

    /// <summary>
    /// Runs every statement of <paramref name="script"/> in order on one owner connection (autocommit, so
    /// BEGIN … COMMIT in the script behaves as in psql) and stops after the first error.
    /// <paramref name="ct"/> cancels the running statement (a user's cancel button).
    /// </summary>
    public async Task<List<StatementResult>> RunAsync(string projectId, string script, CancellationToken ct = default,
        SqlSource source = SqlSource.Console)
    {
        var results = new List<StatementResult>();
        if (script.Length > _opt.MaxScriptLength)
        {
            results.Add(new StatementResult
            {
                Statement = "", Error = new SqlError("54000",
                    $"The script is {script.Length:N0} characters long; the most the console takes is {_opt.MaxScriptLength:N0}."),
            });
            return results;
        }
        var statements = StatementSplitter.Split(script);
        if (statements.Count == 0) return results;

        var total = Stopwatch.StartNew();
        using var activity = Telemetry.Source.StartActivity("sql console");
        activity?.SetTag("dbstudio.project", projectId).SetTag("dbstudio.sql.source", source.ToString())
            .SetTag("dbstudio.sql.statements", statements.Count); // never the SQL text: it may hold passwords
        OwnerConnection lease;
        try { lease = await owners.OpenAsync(projectId, ct); }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.TooManyConnections)
        {
            // The owner role's CONNECTION LIMIT is taken (e.g. by clients of the Connection URL): say so, as data.
            results.Add(new StatementResult { Statement = statements[0].Text, Offset = statements[0].Offset,
                Error = new SqlError(e.SqlState, e.MessageText,
                    $"The project's owner role may hold {_ownerLimit} connections at once, the console's included.",
                    "Close some of the sessions opened with the Connection URL (psql, an app's pool) and run it again.") });
            return results;
        }
        catch (NpgsqlException e)
        {
            results.Add(new StatementResult { Statement = statements[0].Text, Offset = statements[0].Offset,
                Error = new SqlError(e is PostgresException pg ? pg.SqlState : "08006", "Could not connect to the project's database: " + e.Message) });
            return results;
        }
        var budget = new Budget(_opt.MaxRunBytes);
        await using (lease)
        {
            var conn = lease.Connection;
            foreach (var stmt in statements)
            {
                var r = await RunOneAsync(conn, stmt, budget, ct);
                results.Add(r);
                if (r.Error is not null || conn.FullState != ConnectionState.Open) break;
            }
        }
        if (results.Any(r => r.Command is not ("SELECT" or "INSERT" or "UPDATE" or "DELETE")))
        {
            // DDL may have changed tables: refresh the REST schema cache and give new tables their secure defaults.
            schemas.Invalidate(projectId);
            functions.Invalidate(projectId);
            try
            {
                await access.EnsureAllAsync(projectId, CancellationToken.None);
                await functions.GetAsync(projectId, CancellationToken.None); // new functions lose PUBLIC EXECUTE now (secure default)
                await capture.EnsureProjectAsync(projectId, CancellationToken.None); // new tables record their changes
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                log.LogWarning(e, "Could not apply default access policies for project {Project}", projectId);
            }
        }
        activity?.SetTag("dbstudio.sql.errors", results.Count(r => r.Error is not null));
        Telemetry.ConsoleDuration.Record(total.Elapsed.TotalMilliseconds, new KeyValuePair<string, object?>("dbstudio.sql.source", source.ToString()));
        log.LogInformation("Console ran {Count} of {Total} statements for project {Project} in {Elapsed} ms",
            results.Count, statements.Count, projectId, total.ElapsedMilliseconds);
        history.Add(projectId, script, source, results);
        return results;
    }

    /// <summary>
    /// Runs one statement as <paramref name="caller"/> would reach the database through the REST API: on the project's REST
    /// login, in a READ ONLY transaction that takes the caller's role and claims exactly as a REST request does (the REST
    /// executor's prelude), so PostgreSQL's privileges and RLS decide what it reads and PostgreSQL refuses any write (25006,
    /// shown as its message). The transaction is rolled back and the connection closed, never given back to the pool:
    /// nothing the statement did to the session (a role, a setting, a prepared statement, a lock) outlives it. Also lists
    /// the project's tables the statement's plan reads (EXPLAIN on the owner's login, read-only, as console SQL runs).
    /// </summary>
    public async Task<ViewAsRun> RunAsAsync(string projectId, string sql, Auth.RestCaller caller, CancellationToken ct = default)
    {
        if (sql.Length > _opt.MaxScriptLength)
            return new ViewAsRun(new StatementResult { Statement = "", Error = new SqlError("54000",
                $"The statement is {sql.Length:N0} characters long; the most the console takes is {_opt.MaxScriptLength:N0}.") }, []);
        var statements = StatementSplitter.Split(sql);
        if (statements.Count != 1)
            return new ViewAsRun(new StatementResult
            {
                Statement = sql, Error = new SqlError(PostgresErrorCodes.FeatureNotSupported,
                    statements.Count == 0 ? "Nothing to run." : $"\"Run as\" runs one statement at a time; this has {statements.Count}.",
                    null, "Run them one by one, or as the owner (the console) for a script."),
            }, []);
        var stmt = statements[0];
        var role = RestExecutor.RoleOf(caller);
        StatementResult result;
        NpgsqlConnection conn;
        try { conn = await connections.RentForRequestAsync(projectId, role, ct); }
        catch (NpgsqlException e)
        {
            return new ViewAsRun(new StatementResult { Statement = stmt.Text, Offset = stmt.Offset,
                Error = new SqlError(e is PostgresException pg ? pg.SqlState : "08006", "Could not connect as the REST API does: " + e.Message) }, []);
        }
        try
        {
            await using (var begin = new NpgsqlCommand("BEGIN READ ONLY", conn)) await begin.ExecuteNonQueryAsync(ct);
            // The REST request's own prelude (role, claims, read-only), and the project's schema first in the search path,
            // as on the console: both for this transaction only.
            var searchPath = new NpgsqlBatchCommand("SELECT pg_catalog.set_config('search_path', $1, true)")
                { Parameters = { new NpgsqlParameter { Value = SqlText.Ident(ProjectNaming.Schema(projectId)) } } };
            await using (var prelude = new NpgsqlBatch(conn) { BatchCommands = { RestExecutor.PreludeCommand(caller, role, readOnly: true), searchPath } })
                await prelude.ExecuteNonQueryAsync(ct);
            result = await RunOneAsync(conn, stmt, new Budget(_opt.MaxRunBytes), ct);
        }
        catch (PostgresException e) { result = new StatementResult { Statement = stmt.Text, Offset = stmt.Offset, Error = SqlError.From(e, stmt.Offset) }; }
        finally { connections.Discard(conn); }
        log.LogInformation("Console ran one statement as {Kind} for project {Project}", caller.Kind, projectId);
        return new ViewAsRun(result, await TablesReadAsync(projectId, stmt.Text, ct));
    }

    /// <summary>The project's tables (and views) a statement's plan reads, in plan order; none when it cannot be planned.</summary>
    private async Task<IReadOnlyList<string>> TablesReadAsync(string projectId, string statement, CancellationToken ct)
    {
        var schema = ProjectNaming.Schema(projectId);
        try
        {
            await using var lease = await owners.OpenAsync(projectId, ct);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(_opt.StatementTimeout);
            await using (var begin = new NpgsqlCommand("BEGIN READ ONLY", lease.Connection)) await begin.ExecuteNonQueryAsync(deadline.Token);
            await using var explain = new NpgsqlCommand("EXPLAIN (VERBOSE, FORMAT JSON) " + statement, lease.Connection);
            using var plan = System.Text.Json.JsonDocument.Parse(await explain.ExecuteScalarAsync(deadline.Token) as string ?? "[]");
            var tables = new List<string>();
            void Walk(System.Text.Json.JsonElement e)
            {
                if (e.ValueKind == System.Text.Json.JsonValueKind.Array) foreach (var x in e.EnumerateArray()) Walk(x);
                if (e.ValueKind != System.Text.Json.JsonValueKind.Object) return;
                if (e.TryGetProperty("Relation Name", out var name) && e.TryGetProperty("Schema", out var s) && s.GetString() == schema
                    && !tables.Contains(name.GetString()!))
                    tables.Add(name.GetString()!);
                foreach (var p in e.EnumerateObject()) Walk(p.Value);
            }
            Walk(plan.RootElement);
            return tables;
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or System.Text.Json.JsonException or InvalidCastException)
        {
            return []; // not a plannable statement (SHOW, SET, …), or it does not parse: no tables to explain
        }
    }

    /// <summary>What a run may still keep, in bytes of values (ConsoleOptions.MaxResultBytes), across its statements.</summary>
    private sealed class Budget(long runBytes)
    {
        /// <summary>What the run may still keep (MaxRunBytes), and what the current statement may (MaxResultBytes, within it).</summary>
        public long RunLeft = runBytes, Left;
        public bool InTransaction; // an explicit BEGIN was seen: a query is never stopped early there
    }

    private async Task<StatementResult> RunOneAsync(NpgsqlConnection conn, ScriptStatement stmt, Budget budget, CancellationToken userCt)
    {
        var sw = Stopwatch.StartNew();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(userCt);
        deadline.CancelAfter(_opt.StatementTimeout);
        // Text results: every value arrives as PostgreSQL prints it (exact numerics, psql-identical display).
        await using var command = new NpgsqlCommand(stmt.Text, conn) { AllResultTypesAreUnknown = true, CommandTimeout = 0 };
        List<ResultColumn>? columns = null;
        var rows = new List<string?[]>();
        List<TruncatedValue>? cut = null;
        long count = 0, affected = 0;
        var truncated = false;
        var stopped = false; // the budget was spent and the query was canceled there: count is a lower bound
        var type = StatementType.Other;
        var canStop = !budget.InTransaction && IsQuery(stmt.Text);
        var allowance = budget.Left = Math.Min(_opt.MaxResultBytes, Math.Max(0, budget.RunLeft));
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            // Sequential access: each value is read from the wire as it comes, so a value is never held whole —
            // only the part the budget keeps (ReadValueAsync) — and skipped bytes are dropped as they arrive.
            await using (var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, deadline.Token))
            {
                if (reader.FieldCount > 0)
                {
                    columns = new List<ResultColumn>(reader.FieldCount);
                    for (var i = 0; i < reader.FieldCount; i++)
                        columns.Add(new ResultColumn(reader.GetName(i), reader.GetDataTypeName(i))
                            { Kind = ResultColumn.KindOf(reader.GetDataTypeOID(i)) });
                }
                try
                {
                    while (await reader.ReadAsync(deadline.Token))
                    {
                        if (stopped) continue; // rows already on the way when the cancel was sent: not counted
                        count++;
                        if (rows.Count >= _opt.MaxRows || budget.Left <= 0)
                        {
                            truncated = true;
                            if (budget.Left <= 0 && canStop)
                            {
                                // Nothing more will be kept and the rest would only be counted: stop the query (as psql's
                                // Ctrl-C would) rather than let it send, say, 5 GB that is thrown away.
                                count--;
                                stopped = true;
                                command.Cancel();
                            }
                            continue;
                        }
                        var row = new string?[reader.FieldCount];
                        for (var i = 0; i < row.Length; i++)
                        {
                            var (text, bytes, kept) = await ReadValueAsync(reader, i, budget, buffer, deadline.Token);
                            row[i] = text;
                            if (kept < bytes)
                            {
                                (cut ??= []).Add(new TruncatedValue(rows.Count, i, bytes));
                                truncated = true;
                            }
                        }
                        rows.Add(row);
                    }
                    await reader.NextResultAsync(deadline.Token);
                }
                catch (Exception e) when (stopped && !deadline.IsCancellationRequested
                                          && e is OperationCanceledException or PostgresException { SqlState: PostgresErrorCodes.QueryCanceled })
                {
                    // Our own cancel arrived (Npgsql reports it as a cancellation): the rows kept are the answer.
                }
                affected = columns is null ? Math.Max(0, reader.RecordsAffected) : count;
#pragma warning disable CS0618 // the DbBatch replacement has no text-results switch (AllResultTypesAreUnknown)
                if (reader.Statements.Count > 0) type = reader.Statements[0].StatementType;
#pragma warning restore CS0618
            }
            var name = CommandName(stmt.Text, type);
            if (stopped && type == StatementType.Other) name = "SELECT";
            TrackTransaction(budget, stmt.Text);
            return new StatementResult
            {
                Statement = stmt.Text, Offset = stmt.Offset, Command = name,
                Columns = columns ?? [], Rows = rows, RowCount = affected, Truncated = truncated,
                TruncatedValues = cut, RowCountExact = !stopped,
                Notice = truncated ? Notice(rows.Count, count, cut?.Count ?? 0, stopped) : null,
                ElapsedMs = sw.Elapsed.TotalMilliseconds,
            };
        }
        catch (PostgresException e)
        {
            return Failed(stmt, sw, SqlError.From(e, stmt.Offset));
        }
        catch (OperationCanceledException) when (userCt.IsCancellationRequested)
        {
            return Failed(stmt, sw, new SqlError("57014", "Canceled at your request.",
                count > 0 ? $"{count:N0} rows had been read." : null));
        }
        catch (OperationCanceledException)
        {
            return Failed(stmt, sw, new SqlError("57014",
                $"Canceled: the statement ran past the console's {_opt.StatementTimeout.TotalSeconds:0.#} s limit.",
                count > 0 ? $"{count:N0} rows had been read when it was canceled." : null,
                "Add a LIMIT or a WHERE clause, or run long jobs through the Connection URL."));
        }
        catch (NotSupportedException) when (LeadingWords(stmt.Text, 1) is ["COPY"])
        {
            // Npgsql refuses a COPY to or from the client in a plain command (and drops the connection): say why.
            return Failed(stmt, sw, new SqlError(PostgresErrorCodes.FeatureNotSupported,
                "COPY … TO STDOUT and COPY … FROM STDIN need a client that speaks COPY's own protocol; the console does not.",
                null,
                "Use the table's CSV export and import (GET or POST /api/projects/{id}/tables/{table}/export|import), " +
                "a SELECT here, or psql's \\copy with the Connection URL."));
        }
        catch (NpgsqlException e)
        {
            return Failed(stmt, sw, new SqlError("08006", "The connection to the database broke: " + e.Message));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            budget.RunLeft -= allowance - Math.Max(0, budget.Left);
        }
    }

    /// <summary>
    /// Reads value <paramref name="i"/> of the current row as text, keeping at most MaxValueBytes and what the run's
    /// budget has left (cut on a character boundary); the rest of the value is skipped on the wire, never held.
    /// Returns the text, the value's true length in bytes and how many bytes were kept.
    /// </summary>
    private async Task<(string? Text, long Bytes, long Kept)> ReadValueAsync(NpgsqlDataReader reader, int i, Budget budget,
        byte[] buffer, CancellationToken ct)
    {
        if (await reader.IsDBNullAsync(i, ct)) return (null, 0, 0);
        await using var stream = await reader.GetStreamAsync(i, ct);
        var length = stream.Length;
        var keep = (int)Math.Min(length, Math.Min(_opt.MaxValueBytes, Math.Max(0, budget.Left)));
        var into = keep <= buffer.Length ? buffer : System.Buffers.ArrayPool<byte>.Shared.Rent(keep);
        try
        {
            var read = 0;
            while (read < keep)
            {
                var n = await stream.ReadAsync(into.AsMemory(read, keep - read), ct);
                if (n == 0) break;
                read += n;
            }
            if (read < length) read = Utf8Prefix(into.AsSpan(0, read));
            budget.Left -= read + 16; // a little for the value's own bookkeeping, so a flood of empty values ends too
            return (System.Text.Encoding.UTF8.GetString(into, 0, read), length, read);
        }
        finally
        {
            if (!ReferenceEquals(into, buffer)) System.Buffers.ArrayPool<byte>.Shared.Return(into);
        }
    }

    /// <summary>The length of the longest prefix of <paramref name="bytes"/> that ends on a whole UTF-8 character.</summary>
    internal static int Utf8Prefix(ReadOnlySpan<byte> bytes)
    {
        var end = bytes.Length;
        // Find the last lead byte (not 10xxxxxx) among the last four; keep it only if its sequence is complete.
        for (var back = 1; back <= Math.Min(4, end); back++)
        {
            var b = bytes[end - back];
            if ((b & 0xC0) == 0x80) continue;
            var need = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : 4;
            return need <= back ? end : end - back;
        }
        return end;
    }

    private string Notice(int kept, long read, int cutValues, bool stopped)
    {
        var parts = new List<string>();
        if (cutValues > 0)
            parts.Add($"{cutValues:N0} {(cutValues == 1 ? "value was" : "values were")} cut (the console keeps {Size(_opt.MaxValueBytes)} of a value; see truncatedValues for true lengths)");
        if (kept < read || stopped)
            parts.Add(stopped
                ? $"the result's byte budget ({Size(_opt.MaxResultBytes)}, {Size(_opt.MaxRunBytes)} per run) was spent after {kept:N0} rows, so the query was stopped there"
                : $"{kept:N0} of {read:N0} rows are shown (at most {_opt.MaxRows:N0} rows and {Size(_opt.MaxResultBytes)} per result, {Size(_opt.MaxRunBytes)} per run)");
        var text = string.Join("; ", parts);
        return text.Length == 0 ? "" : char.ToUpperInvariant(text[0]) + text[1..] + ".";
    }

    private static string Size(long bytes) => bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 ? $"{bytes / (1024 * 1024):N0} MiB"
        : bytes >= 1024 && bytes % 1024 == 0 ? $"{bytes / 1024:N0} KiB" : $"{bytes:N0} bytes";

    /// <summary>
    /// Whether stopping the statement part-way changes nothing but its answer: a plain query. A WITH that names a
    /// data-modifying command, EXPLAIN (ANALYZE runs the statement) and everything else keep running to the end.
    /// </summary>
    internal static bool IsQuery(string sql)
    {
        var first = LeadingWords(sql, 1);
        if (first.Count == 0) return false;
        return first[0] switch
        {
            "SELECT" or "VALUES" or "TABLE" or "SHOW" => true,
            "WITH" => !System.Text.RegularExpressions.Regex.IsMatch(sql, @"\b(insert|update|delete|merge|call|copy)\b",
                System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant),
            _ => false,
        };
    }

    /// <summary>Follows BEGIN/START … COMMIT/ROLLBACK by the statements' first words (erring on "in a transaction").</summary>
    private static void TrackTransaction(Budget budget, string sql)
    {
        var words = LeadingWords(sql, 2);
        if (words.Count == 0) return;
        if (words[0] is "BEGIN" or "START") budget.InTransaction = true;
        else if (words[0] is "COMMIT" or "END" or "ABORT" || (words[0] == "ROLLBACK" && (words.Count == 1 || words[1] != "TO")))
            budget.InTransaction = false;
    }

    private static StatementResult Failed(ScriptStatement stmt, Stopwatch sw, SqlError error) => new()
    {
        Statement = stmt.Text, Offset = stmt.Offset, Error = error, ElapsedMs = sw.Elapsed.TotalMilliseconds,
    };

    /// <summary>A psql-like command name ("SELECT", "CREATE TABLE") from the statement type or its first keywords.</summary>
    internal static string CommandName(string sql, StatementType type)
    {
        switch (type)
        {
            case StatementType.Select: return "SELECT";
            case StatementType.Insert: return "INSERT";
            case StatementType.Update: return "UPDATE";
            case StatementType.Delete: return "DELETE";
            case StatementType.Merge: return "MERGE";
            case StatementType.CreateTableAs: return "CREATE TABLE AS";
        }
        var words = LeadingWords(sql, 6);
        if (words.Count == 0) return "";
        if (words[0] is "CREATE" or "ALTER" or "DROP" && words.Count > 1)
        {
            var i = 1;
            while (i < words.Count && words[i] is "OR" or "REPLACE" or "TEMP" or "TEMPORARY" or "UNLOGGED" or "UNIQUE"
                       or "GLOBAL" or "LOCAL" or "RECURSIVE" or "TRUSTED" or "PROCEDURAL" or "CONSTRAINT") i++;
            if (i >= words.Count) return words[0];
            var obj = words[i];
            if (obj is "MATERIALIZED" or "FOREIGN" or "EVENT" or "TEXT" or "ACCESS" && i + 1 < words.Count) obj += " " + words[i + 1];
            return words[0] + " " + obj;
        }
        return words[0];
    }

    private static List<string> LeadingWords(string sql, int max)
    {
        var words = new List<string>();
        var i = 0;
        while (i < sql.Length && words.Count < max)
        {
            var c = sql[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (c == '-' && i + 1 < sql.Length && sql[i + 1] == '-') { while (i < sql.Length && sql[i] != '\n') i++; continue; }
            if (c == '/' && i + 1 < sql.Length && sql[i + 1] == '*')
            {
                var end = sql.IndexOf("*/", i + 2, StringComparison.Ordinal);
                i = end < 0 ? sql.Length : end + 2;
                continue;
            }
            if (!char.IsLetter(c)) break;
            var j = i;
            while (j < sql.Length && (char.IsLetter(sql[j]) || sql[j] == '_')) j++;
            words.Add(sql[i..j].ToUpperInvariant());
            i = j;
        }
        return words;
    }
}
