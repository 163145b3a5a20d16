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

namespace DbStudio.Core.Console;

public sealed class SqlConsole(OwnerConnections owners, SchemaCache schemas, AccessPolicies access, Streams.ChangeCapture capture, SqlHistory history,
    IOptions<DbStudioOptions> options, ILogger<SqlConsole> log)
{
    private readonly ConsoleOptions _opt = options.Value.Console;

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
        NpgsqlConnection conn;
        try { conn = await owners.OpenAsync(projectId, ct); }
        catch (NpgsqlException e) when (e is not PostgresException)
        {
            results.Add(new StatementResult { Statement = statements[0].Text, Offset = statements[0].Offset,
                Error = new SqlError("08006", "Could not connect to the project's database: " + e.Message) });
            return results;
        }
        await using (conn)
        {
            foreach (var stmt in statements)
            {
                var r = await RunOneAsync(conn, stmt, ct);
                results.Add(r);
                if (r.Error is not null || conn.FullState != ConnectionState.Open) break;
            }
        }
        if (results.Any(r => r.Command is not ("SELECT" or "INSERT" or "UPDATE" or "DELETE")))
        {
            // DDL may have changed tables: refresh the REST schema cache and give new tables their secure defaults.
            schemas.Invalidate(projectId);
            try
            {
                await access.EnsureAllAsync(projectId, CancellationToken.None);
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

    private async Task<StatementResult> RunOneAsync(NpgsqlConnection conn, ScriptStatement stmt, CancellationToken userCt)
    {
        var sw = Stopwatch.StartNew();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(userCt);
        deadline.CancelAfter(_opt.StatementTimeout);
        // Text results: every value arrives as PostgreSQL prints it (exact numerics, psql-identical display).
        await using var command = new NpgsqlCommand(stmt.Text, conn) { AllResultTypesAreUnknown = true, CommandTimeout = 0 };
        List<ResultColumn>? columns = null;
        var rows = new List<string?[]>();
        long count = 0, affected = 0;
        var truncated = false;
        var type = StatementType.Other;
        try
        {
            await using (var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, deadline.Token))
            {
                if (reader.FieldCount > 0)
                {
                    columns = new List<ResultColumn>(reader.FieldCount);
                    for (var i = 0; i < reader.FieldCount; i++)
                        columns.Add(new ResultColumn(reader.GetName(i), reader.GetDataTypeName(i))
                            { Kind = ResultColumn.KindOf(reader.GetDataTypeOID(i)) });
                }
                while (await reader.ReadAsync(deadline.Token))
                {
                    count++;
                    if (rows.Count >= _opt.MaxRows) { truncated = true; continue; }
                    var row = new string?[reader.FieldCount];
                    for (var i = 0; i < row.Length; i++)
                        row[i] = await reader.IsDBNullAsync(i, deadline.Token) ? null : reader.GetString(i);
                    rows.Add(row);
                }
                await reader.NextResultAsync(deadline.Token);
                affected = columns is null ? Math.Max(0, reader.RecordsAffected) : count;
#pragma warning disable CS0618 // the DbBatch replacement has no text-results switch (AllResultTypesAreUnknown)
                if (reader.Statements.Count > 0) type = reader.Statements[0].StatementType;
#pragma warning restore CS0618
            }
            return new StatementResult
            {
                Statement = stmt.Text, Offset = stmt.Offset, Command = CommandName(stmt.Text, type),
                Columns = columns ?? [], Rows = rows, RowCount = affected, Truncated = truncated,
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
        catch (NpgsqlException e)
        {
            return Failed(stmt, sw, new SqlError("08006", "The connection to the database broke: " + e.Message));
        }
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
