// CSV in and out of a project's table (DESIGN §7, issue 14), on the project owner's own login (as the console: the
// table's triggers and defaults run in the project's session, never the platform's).
//  - Import is all or nothing. The file is handed to PostgreSQL's COPY as it is (no parsing in .NET on the way: the
//    speed of `psql \copy`), in one transaction. Only when COPY refuses does the importer look closer, to report every
//    bad row rather than the first: the file is read again with CsvHelper into a temporary table of text columns (with
//    each record's line number), and a PL/pgSQL loop inserts row by row, each in its own subtransaction, recording
//    PostgreSQL's SQLSTATE, message and column for each refusal; then everything is rolled back. A dry run does the
//    same and always rolls back. Memory stays flat in the row count: the file is streamed, twice at most.
//  - Export is COPY (SELECT …) TO STDOUT with a header line, streamed to the caller as PostgreSQL writes it; the SELECT
//    (columns, filters, order) is REST's planner's (RestSql.ForCopy), so a filter means the same in the API, the Data tab
//    and the export.
using System.Globalization;
using System.Text;
using CsvHelper;
using DbStudio.Core.Catalog;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Core.Sql;
using Npgsql;

namespace DbStudio.Core.Csv;

/// <summary>One refused row: the file's 1-based line number where its record starts, the column (when PostgreSQL or
/// the check can tell), PostgreSQL's SQLSTATE and message.</summary>
public sealed record ImportError(long Line, string? Column, string Code, string Message);

/// <summary>What an import did: rows read, rows imported (0 unless every row went in), and every row refused.</summary>
public sealed record ImportResult(bool DryRun, long Rows, long Imported, IReadOnlyList<ImportError> Errors);

/// <summary>The file cannot be imported at all (no header, unknown or repeated columns): nothing was read into the table.</summary>
public sealed class CsvImportException(string message, IReadOnlyList<ImportError> errors) : Exception(message)
{
    public IReadOnlyList<ImportError> Errors { get; } = errors;
}

public sealed class CsvTransfer(OwnerConnections owners, SchemaCache schemas)
{
    /// <summary>At most this many refused rows are reported (the rest are counted only as "more").</summary>
    public const int MaxErrors = 1000;

    /// <summary>
    /// Imports the CSV <paramref name="open"/> returns (it is opened again when COPY refuses, to find every bad row) into
    /// <paramref name="table"/>: the first record names the columns; missing columns get their defaults. Null when the
    /// table does not exist.
    /// </summary>
    public async Task<ImportResult?> ImportAsync(string projectId, string table, Func<Stream> open, bool dryRun, CancellationToken ct)
    {
        var info = await schemas.FindTableAsync(projectId, table, ct);
        if (info is null || !info.IsTable) return null;
        var columns = await ReadHeaderAsync(open, info, ct);

        await using var owner = await owners.OpenAsync(projectId, ct);
        var conn = owner.Connection;
        await using var tx = await BeginAsync(conn, ct);
        return await CopyInAsync(conn, tx, info, columns, open, dryRun, ct);
    }

    /// <summary>
    /// Creates table <paramref name="table"/> with <paramref name="createSql"/> (the Schema tab's CREATE TABLE for the file's
    /// columns) and imports the file into it in the same transaction: all or nothing — a bad row, or a dry run, leaves no
    /// table. Throws CsvImportException when the table cannot be created (PostgreSQL's code and message, line 1).
    /// </summary>
    public async Task<ImportResult> ImportAsNewTableAsync(string projectId, string table, string createSql, Func<Stream> open, bool dryRun,
        CancellationToken ct)
    {
        await using var owner = await owners.OpenAsync(projectId, ct);
        var conn = owner.Connection;
        await using var tx = await BeginAsync(conn, ct);
        try
        {
            await using var create = new NpgsqlCommand(createSql, conn, tx);
            await create.ExecuteNonQueryAsync(ct);
        }
        catch (PostgresException e)
        {
            throw new CsvImportException($"The table \"{table}\" could not be created: {e.MessageText}",
                [new ImportError(1, e.ColumnName, e.SqlState, e.MessageText)]);
        }
        var info = await ReadNewTableAsync(conn, tx, ProjectNaming.Schema(projectId), table, ct);
        var columns = await ReadHeaderAsync(open, info, ct);
        return await CopyInAsync(conn, tx, info, columns, open, dryRun, ct);
    }

    private static async Task<NpgsqlTransaction> BeginAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        var tx = await conn.BeginTransactionAsync(ct);
        await using (var timeout = new NpgsqlCommand("SET LOCAL statement_timeout = 0", conn, tx)) await timeout.ExecuteNonQueryAsync(ct);
        return tx;
    }

    /// <summary>A table created in this transaction, as its own connection sees it (the catalog cache cannot yet).</summary>
    private static async Task<TableInfo> ReadNewTableAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string schema, string table,
        CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("""
            SELECT c.oid, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, a.attnotnull
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = $1 AND c.relname = $2 ORDER BY a.attnum
            """, conn, tx);
        cmd.Parameters.Add(new NpgsqlParameter { Value = schema });
        cmd.Parameters.Add(new NpgsqlParameter { Value = table });
        uint oid = 0;
        var columns = new List<ColumnInfo>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
            {
                oid = r.GetFieldValue<uint>(0);
                columns.Add(new ColumnInfo(r.GetString(1), r.GetString(2), r.GetFieldValue<uint>(3), r.GetBoolean(4), null, null, false));
            }
        return new TableInfo { Schema = schema, Name = table, Oid = oid, Kind = 'r', Columns = columns };
    }

    /// <summary>
    /// COPY of the file into the table, in the caller's transaction, committed when every row went in (and it is no dry
    /// run); otherwise every bad row is found and everything — the transaction's earlier work too — is rolled back.
    /// </summary>
    private static async Task<ImportResult> CopyInAsync(NpgsqlConnection conn, NpgsqlTransaction tx, TableInfo info, IReadOnlyList<ColumnInfo> columns,
        Func<Stream> open, bool dryRun, CancellationToken ct)
    {
        var target = SqlText.Qualified(info.Schema, info.Name);
        var columnList = string.Join(", ", columns.Select(c => SqlText.Ident(c.Name)));

        await using (var save = new NpgsqlCommand("SAVEPOINT copy_all", conn, tx)) await save.ExecuteNonQueryAsync(ct);
        PostgresException? refused = null;
        long rows = 0;
        try
        {
            await using var source = open();
            await using (var copy = await conn.BeginTextImportAsync(
                $"COPY {target} ({columnList}) FROM STDIN WITH (FORMAT csv, HEADER true)", ct))
                rows = await CopyCountingAsync(source, copy, ct);
        }
        catch (PostgresException e) { refused = e; }

        if (refused is null)
        {
            if (dryRun) await tx.RollbackAsync(ct); else await tx.CommitAsync(ct);
            return new ImportResult(dryRun, rows, dryRun ? 0 : rows, []);
        }

        await using (var back = new NpgsqlCommand("ROLLBACK TO SAVEPOINT copy_all", conn, tx)) await back.ExecuteNonQueryAsync(ct);
        var (read, errors) = await FindBadRowsAsync(conn, tx, open, info, columns, ct);
        if (errors.Count == 0)
            errors = [new ImportError(0, refused.ColumnName, refused.SqlState, refused.MessageText)]; // e.g. a deferred constraint
        await tx.RollbackAsync(ct);
        return new ImportResult(dryRun, read, 0, errors);
    }

    /// <summary>The table's columns the header names, in its order; refuses empty, unknown and repeated names.</summary>
    private static async Task<IReadOnlyList<ColumnInfo>> ReadHeaderAsync(Func<Stream> open, TableInfo info, CancellationToken ct)
    {
        await using var source = open();
        await using var csv = CsvReader.Create(source, Options, false);
        if (!await csv.ReadAsync(ct) || csv.FieldCount == 0 || Enumerable.Range(0, csv.FieldCount).All(i => csv.IsEmpty(i)))
            throw new CsvImportException("The file is empty: its first line must name the columns",
                [new ImportError(1, null, "22P04", "The first line must name the columns")]);
        var header = Enumerable.Range(0, csv.FieldCount).Select(i => csv.GetString(i)).ToList();
        var errors = new List<ImportError>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var columns = new List<ColumnInfo>();
        foreach (var name in header)
        {
            if (info.Find(name) is not { } column)
                errors.Add(new ImportError(1, name, "42703", $"Column \"{name}\" does not exist in table \"{info.Name}\""));
            else if (!seen.Add(name))
                errors.Add(new ImportError(1, name, "42701", $"Column \"{name}\" is named twice in the header"));
            else columns.Add(column);
        }
        if (errors.Count > 0)
            throw new CsvImportException($"The header names {errors.Count} column(s) the table cannot take", errors);
        ct.ThrowIfCancellationRequested();
        return columns;
    }

    private static readonly CsvReaderOptions Options = new()
    {
        HasHeader = false, // read as a record of its own
        TrackLineNumbers = true,
        SkipEmptyLines = false, // COPY refuses them: say where they are
    };

    /// <summary>
    /// Sends the file to COPY as it is (a byte-order mark dropped) and counts its records on the way, quote-aware, without
    /// parsing them: the header is one of them.
    /// </summary>
    private static async Task<long> CopyCountingAsync(Stream source, TextWriter copy, CancellationToken ct)
    {
        var buffer = new byte[128 * 1024];
        var chars = new char[buffer.Length + 4];
        var decoder = new UTF8Encoding(false, throwOnInvalidBytes: false).GetDecoder();
        long records = 0;
        bool inQuotes = false, first = true, pending = false;
        int n;
        while ((n = await source.ReadAsync(buffer, ct)) > 0)
        {
            var span = buffer.AsSpan(0, n);
            if (first)
            {
                first = false;
                if (span.StartsWith("\uFEFF"u8)) span = span[3..];
            }
            foreach (var b in span)
            {
                if (b == (byte)'"') inQuotes = !inQuotes;
                else if (b == (byte)'\n' && !inQuotes) { if (pending) records++; pending = false; continue; }
                if (b != (byte)'\r') pending = true;
            }
            var count = decoder.GetChars(buffer, n - span.Length, span.Length, chars, 0, flush: false);
            await copy.WriteAsync(chars.AsMemory(0, count), ct);
        }
        if (pending) records++;
        return Math.Max(0, records - 1);
    }

    /// <summary>
    /// Reads the file again into a temporary table (text columns and each record's line), then inserts row by row in a
    /// PL/pgSQL loop — each in a subtransaction — recording every refusal. The caller rolls everything back.
    /// </summary>
    private static async Task<(long Rows, List<ImportError> Errors)> FindBadRowsAsync(NpgsqlConnection conn, NpgsqlTransaction tx,
        Func<Stream> open, TableInfo info, IReadOnlyList<ColumnInfo> columns, CancellationToken ct)
    {
        var staged = string.Join(", ", columns.Select((_, i) => $"c{i} text"));
        await using (var make = new NpgsqlCommand(
            $"CREATE TEMP TABLE pg_temp.dbstudio_import (line bigint, {staged}) ON COMMIT DROP; " +
            "CREATE TEMP TABLE pg_temp.dbstudio_import_errors (line bigint, col text, code text, message text) ON COMMIT DROP", conn, tx))
            await make.ExecuteNonQueryAsync(ct);

        long rows = 0;
        var errors = new List<ImportError>();
        await using (var source = open())
        await using (var csv = CsvReader.Create(source, Options, false))
        {
            await csv.ReadAsync(ct); // the header
            await using var import = await conn.BeginBinaryImportAsync(
                $"COPY pg_temp.dbstudio_import (line, {string.Join(", ", columns.Select((_, i) => $"c{i}"))}) FROM STDIN (FORMAT BINARY)", ct);
            while (await csv.ReadAsync(ct))
            {
                long line = csv.LineNumber;
                rows++;
                var blank = csv.FieldCount <= 1 && csv.IsEmpty(0) && columns.Count > 1;
                if (blank || csv.FieldCount != columns.Count)
                {
                    // What COPY says of it; such a row is not staged.
                    if (errors.Count < MaxErrors)
                        errors.Add(blank ? new ImportError(line, null, "22P04", "Blank line: every line must be a row")
                            : csv.FieldCount < columns.Count
                                ? new ImportError(line, columns[csv.FieldCount].Name, "22P04", $"Missing data for column \"{columns[csv.FieldCount].Name}\"")
                                : new ImportError(line, null, "22P04", $"Extra data after the last expected column ({csv.FieldCount} fields, the header names {columns.Count})"));
                    continue;
                }
                await import.StartRowAsync(ct);
                await import.WriteAsync(line, NpgsqlTypes.NpgsqlDbType.Bigint, ct);
                for (var i = 0; i < columns.Count; i++)
                {
                    // As COPY's CSV reads it: an empty field is NULL, a quoted empty one ("") an empty string.
                    if (csv.IsEmpty(i) && csv.GetRawSpan(i).Trim((byte)' ').Length == 0) await import.WriteNullAsync(ct);
                    else await import.WriteAsync(csv.GetString(i), NpgsqlTypes.NpgsqlDbType.Text, ct);
                }
            }
            await import.CompleteAsync(ct);
        }

        var target = SqlText.Qualified(info.Schema, info.Name);
        var casts = string.Join(", ", columns.Select((c, i) => $"r.c{i}::{c.Type}"));
        var probes = string.Join("\n", columns.Select((c, i) =>
            $"        IF col IS NULL OR col = '' THEN BEGIN PERFORM r.c{i}::{c.Type}; EXCEPTION WHEN others THEN col := {SqlText.Literal(c.Name)}; END; END IF;"));
        var loop = $"""
            DO $dbstudio$
            DECLARE r record; col text; st text; msg text; n int := 0;
            BEGIN
              FOR r IN SELECT * FROM pg_temp.dbstudio_import ORDER BY line LOOP
                BEGIN
                  INSERT INTO {target} ({string.Join(", ", columns.Select(c => SqlText.Ident(c.Name)))}) VALUES ({casts});
                EXCEPTION WHEN others THEN
                  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, col = COLUMN_NAME;
                  IF st LIKE '22%' THEN col := NULL; END IF; -- a value that does not convert: find its column
            {probes}
                  INSERT INTO pg_temp.dbstudio_import_errors VALUES (r.line, nullif(col, ''), st, msg);
                  n := n + 1;
                  EXIT WHEN n >= {MaxErrors};
                END;
              END LOOP;
            END
            $dbstudio$
            """;
        await using (var run = new NpgsqlCommand(loop, conn, tx)) await run.ExecuteNonQueryAsync(ct);

        await using (var read = new NpgsqlCommand("SELECT line, col, code, message FROM pg_temp.dbstudio_import_errors ORDER BY line", conn, tx))
        await using (var r = await read.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                errors.Add(new ImportError(r.GetInt64(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetString(2), r.GetString(3)));
        return (rows, [.. errors.OrderBy(e => e.Line).Take(MaxErrors)]);
    }

    /// <summary>
    /// Writes the rows <paramref name="request"/> reads (its filters, select, order, limit, offset — REST's planner writes the
    /// statement; null: the whole table) as CSV — a header line, then every row as COPY writes it, in the order asked, else by
    /// primary key — to <paramref name="output"/> as PostgreSQL sends it: no row cap, nothing held but a buffer. Null when
    /// it was written; otherwise why it was refused (an unknown table or column, a bad filter value), and then nothing was
    /// written: the first 32 K characters are held back until PostgreSQL has sent them without error.
    /// </summary>
    public async Task<ExportRefused?> ExportAsync(string projectId, string table, Stream output, RestRequest? request = null,
        CancellationToken ct = default)
    {
        var info = await schemas.FindTableAsync(projectId, table, ct);
        if (info is null)
            return new ExportRefused(404, new RestError("PGRST205", $"Could not find the table '{RestParser.Trim(table)}'", null, null));
        request ??= new RestRequest { Verb = RestVerb.Get, Table = table };
        var (query, refused) = Plan(request, info);
        // A column added since the catalog was read (a direct connection)? Read it again, once.
        if (refused?.Error.Code == "42703"
            && (await schemas.ReloadIfOlderAsync(projectId, await schemas.GetAsync(projectId, ct))).Tables.GetValueOrDefault(table) is { } fresh)
            (query, refused) = Plan(request, fresh);
        if (refused is not null || query is null) return refused;

        await using var owner = await owners.OpenAsync(projectId, ct);
        var conn = owner.Connection;
        await using var tx = await conn.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct);
        await using (var setup = new NpgsqlCommand("SET LOCAL statement_timeout = 0; SET LOCAL transaction_read_only = on", conn, tx))
            await setup.ExecuteNonQueryAsync(ct);
        await using (var args = new NpgsqlCommand(query.SetArguments, conn, tx))
        {
            args.Parameters.Add(new NpgsqlParameter { Value = query.Arguments, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            await args.ExecuteNonQueryAsync(ct);
        }
        var chars = new char[32 * 1024];
        var bytes = new byte[Encoding.UTF8.GetMaxByteCount(chars.Length)];
        var utf8 = new UTF8Encoding(false).GetEncoder(); // keeps a surrogate pair cut by the buffer whole
        var held = 0;
        var ended = false;
        TextReader? copy = null;
        try
        {
            try
            {
                copy = await conn.BeginTextExportAsync($"COPY ({query.Select}) TO STDOUT WITH (FORMAT csv, HEADER true)", ct);
                // COPY sends the header before the query runs: a value that does not convert fails at the first row.
                while (held < chars.Length && !ended)
                {
                    var n = await copy.ReadAsync(chars.AsMemory(held), ct);
                    if (n == 0) ended = true;
                    held += n;
                }
            }
            catch (PostgresException e)
            {
                var (status, error) = SqlStateHttp.From(e, anonymous: false);
                return new ExportRefused(status, error);
            }
            var read = held;
            while (true)
            {
                var length = utf8.GetBytes(chars, 0, read, bytes, 0, flush: ended);
                if (length > 0) await output.WriteAsync(bytes.AsMemory(0, length), ct);
                if (ended) break;
                read = await copy.ReadAsync(chars.AsMemory(), ct);
                ended = read == 0;
            }
        }
        finally { copy?.Dispose(); }
        await tx.CommitAsync(ct);
        return null;
    }

    private static (CopyQuery? Query, ExportRefused? Refused) Plan(RestRequest request, TableInfo table)
    {
        try { return (RestSql.ForCopy(request, table), null); }
        catch (RestException e) { return (null, new ExportRefused(e.Status, e.Error)); }
    }
}

/// <summary>Why an export was refused before anything was written: the HTTP status and the error, as the REST API answers them.</summary>
public sealed record ExportRefused(int Status, RestError Error);
