// The Schema tab's DDL: create and drop tables; add, drop, rename and change columns (type with a USING cast, default,
// NOT NULL); unique constraints, indexes and foreign keys; the table's DDL, read-only. The panel's 13 column types.
// Names are quoted, types come from a fixed list, defaults are SQL expressions a person typed (run as the project's
// owner role, like the console). Every change is one statement, or one transaction; errors come back as PostgreSQL's,
// as data, and then nothing changed. A CSV file becomes a new table in one transaction with its rows (CreateAndImportAsync).
using DbStudio.Core.Access;
using DbStudio.Core.Console;
using DbStudio.Core.Csv;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Core.Sql;
using Npgsql;
using DbStudio.Core.Catalog;

namespace DbStudio.Core.Schema;

public sealed record NewColumn(string Name, string Type, bool Nullable = true, string? Default = null, bool PrimaryKey = false);

/// <summary>What to change of a column; null leaves that part as it is. <see cref="Default"/> "" drops the default.</summary>
public sealed record ColumnChange(string? NewName = null, string? Type = null, string? Default = null, bool? Nullable = null);

/// <summary>What a foreign key does to referencing rows when the referenced row is deleted.</summary>
public enum OnDelete { NoAction, Restrict, Cascade, SetNull }

/// <summary>A constraint of the table as PostgreSQL shows it: kind p (primary key), u (unique), f (foreign key), c (check).</summary>
public sealed record ConstraintInfo(string Name, char Kind, string Definition, IReadOnlyList<string> Columns, string? References);

/// <summary>An index of the table; <see cref="Constraint"/> when a constraint owns it (drop the constraint instead).</summary>
public sealed record IndexInfo(string Name, string Definition, bool Unique, string? Constraint);

/// <summary>The table's constraints, indexes and DDL (CREATE TABLE, then its constraints and other indexes).</summary>
public sealed record TableDetails(IReadOnlyList<ConstraintInfo> Constraints, IReadOnlyList<IndexInfo> Indexes, string Ddl);

public sealed class SchemaEditor(OwnerConnections owners, SchemaCache schemas, AccessPolicies access, Streams.ChangeCapture capture,
    CsvTransfer csv)
{
    /// <summary>The column types offered in the panel (others still display).</summary>
    public static readonly IReadOnlyList<string> Types =
        ["TEXT", "INTEGER", "BIGINT", "SERIAL", "BOOLEAN", "FLOAT", "NUMERIC", "TIMESTAMPTZ", "DATE", "JSON", "JSONB", "UUID", "VARCHAR(255)"];

    private static Validated<string> SqlType(string type) => type.ToUpperInvariant() switch
    {
        "FLOAT" => Validated<string>.Ok("double precision"),
        var t when Types.Contains(t) => Validated<string>.Ok(t.ToLowerInvariant()),
        _ => Validated<string>.Invalid($"Unsupported column type \"{type}\". Choose one of: {string.Join(", ", Types)}."),
    };

    private const string NulInName = "A name cannot contain a NUL character.";

    /// <summary>CREATE TABLE with the given columns (and, if asked, an owner column user_id uuid); or what is wrong with them.</summary>
    public static Validated<string> CreateTableSql(string schema, string table, IReadOnlyList<NewColumn> columns, bool ownerColumn)
    {
        if (string.IsNullOrWhiteSpace(table)) return Validated<string>.Invalid("The table needs a name.");
        if (columns.Count == 0 && !ownerColumn) return Validated<string>.Invalid("The table needs at least one column.");
        var defs = new List<string>();
        foreach (var c in columns)
        {
            var def = ColumnSql(c);
            if (!def.IsValid) return def;
            defs.Add(def.Value);
        }
        if (ownerColumn && columns.All(c => c.Name != "user_id")) defs.Add("\"user_id\" uuid");
        var pk = columns.Where(c => c.PrimaryKey).Select(c => SqlText.Ident(c.Name)).ToList();
        if (pk.Count > 0) defs.Add($"PRIMARY KEY ({string.Join(", ", pk)})");
        return Validated<string>.Ok($"CREATE TABLE {SqlText.Qualified(schema, table)} (\n  {string.Join(",\n  ", defs)}\n)");
    }

    public static Validated<string> AddColumnSql(string schema, string table, NewColumn column)
    {
        var def = ColumnSql(column);
        return def.IsValid ? Validated<string>.Ok($"ALTER TABLE {SqlText.Qualified(schema, table)} ADD COLUMN {def.Value}") : def;
    }

    public static string DropColumnSql(string schema, string table, string column) =>
        $"ALTER TABLE {SqlText.Qualified(schema, table)} DROP COLUMN {SqlText.Ident(column)}";

    public static string DropTableSql(string schema, string table) => $"DROP TABLE {SqlText.Qualified(schema, table)}";

    /// <summary>The statements of a column change, in the order they run (one transaction): type, default, NOT NULL, name.</summary>
    public static Validated<IReadOnlyList<string>> ChangeColumnSql(string schema, string table, string column, ColumnChange change)
    {
        var t = SqlText.Qualified(schema, table);
        var c = SqlText.Ident(column);
        var list = new List<string>();
        if (change.Type is { } type)
        {
            var sqlType = SqlType(type);
            if (!sqlType.IsValid) return Validated<IReadOnlyList<string>>.Invalid(sqlType.Problem!);
            // The cast PostgreSQL would refuse without USING (text to integer, …) is spelled out; rows that do not
            // convert make PostgreSQL refuse the change, with its message.
            list.Add($"ALTER TABLE {t} ALTER COLUMN {c} TYPE {sqlType.Value} USING {c}::{sqlType.Value}");
        }
        if (change.Default is { } d)
        {
            if (string.IsNullOrWhiteSpace(d)) list.Add($"ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT");
            else if (!IsOneExpression(d)) return Validated<IReadOnlyList<string>>.Invalid("A default must be a single expression.");
            else list.Add($"ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {d}");
        }
        if (change.Nullable is { } nullable)
            list.Add($"ALTER TABLE {t} ALTER COLUMN {c} {(nullable ? "DROP" : "SET")} NOT NULL");
        if (change.NewName is { } name && name != column)
        {
            if (string.IsNullOrWhiteSpace(name)) return Validated<IReadOnlyList<string>>.Invalid("The column needs a name.");
            list.Add($"ALTER TABLE {t} RENAME COLUMN {c} TO {SqlText.Ident(name)}");
        }
        return list.Count == 0 ? Validated<IReadOnlyList<string>>.Invalid("Nothing to change.") : Validated<IReadOnlyList<string>>.Ok(list);
    }

    public static Validated<string> AddUniqueSql(string schema, string table, IReadOnlyList<string> columns) =>
        Columns(columns) is { IsValid: true } list
            ? Validated<string>.Ok($"ALTER TABLE {SqlText.Qualified(schema, table)} ADD UNIQUE ({list.Value})") : Columns(columns);

    public static string AddForeignKeySql(string schema, string table, string column, string refTable, string refColumn, OnDelete onDelete) =>
        $"ALTER TABLE {SqlText.Qualified(schema, table)} ADD FOREIGN KEY ({SqlText.Ident(column)}) " +
        $"REFERENCES {SqlText.Qualified(schema, refTable)} ({SqlText.Ident(refColumn)}) ON DELETE " + onDelete switch
        {
            OnDelete.Cascade => "CASCADE",
            OnDelete.Restrict => "RESTRICT",
            OnDelete.SetNull => "SET NULL",
            _ => "NO ACTION",
        };

    public static string DropConstraintSql(string schema, string table, string constraint) =>
        $"ALTER TABLE {SqlText.Qualified(schema, table)} DROP CONSTRAINT {SqlText.Ident(constraint)}";

    /// <summary>CREATE [UNIQUE] INDEX on the columns; PostgreSQL names it (table_col_idx).</summary>
    public static Validated<string> CreateIndexSql(string schema, string table, IReadOnlyList<string> columns, bool unique) =>
        Columns(columns) is { IsValid: true } list
            ? Validated<string>.Ok($"CREATE {(unique ? "UNIQUE " : "")}INDEX ON {SqlText.Qualified(schema, table)} ({list.Value})") : Columns(columns);

    public static string DropIndexSql(string schema, string index) => $"DROP INDEX {SqlText.Qualified(schema, index)}";

    private static Validated<string> Columns(IReadOnlyList<string> columns) =>
        columns.Count == 0 || columns.Any(string.IsNullOrWhiteSpace) ? Validated<string>.Invalid("Choose at least one column.")
            : Validated<string>.Ok(string.Join(", ", columns.Select(SqlText.Ident)));

    /// <summary>An SQL expression a person typed is exactly one (a semicolon would end the statement early).</summary>
    private static bool IsOneExpression(string text) => StatementSplitter.Split("SELECT " + text).Count == 1;

    private static Validated<string> ColumnSql(NewColumn c)
    {
        if (string.IsNullOrWhiteSpace(c.Name)) return Validated<string>.Invalid("Every column needs a name.");
        var type = SqlType(c.Type);
        if (!type.IsValid) return type;
        var sql = $"{SqlText.Ident(c.Name)} {type.Value}";
        if (!c.Nullable || c.PrimaryKey) sql += " NOT NULL";
        if (!string.IsNullOrWhiteSpace(c.Default))
        {
            // A default is an SQL expression (now(), 0, 'text', gen_random_uuid()) that a person typed; it runs as the
            // owner role, as console SQL does. A semicolon would end the statement early: refuse it.
            if (!IsOneExpression(c.Default)) return Validated<string>.Invalid("A default must be a single expression.");
            sql += $" DEFAULT {c.Default}";
        }
        return Validated<string>.Ok(sql);
    }

    public Task<SqlError?> CreateTableAsync(string projectId, string table, IReadOnlyList<NewColumn> columns, bool ownerColumn, CancellationToken ct = default) =>
        RunAsync(projectId, [table, .. columns.Select(c => c.Name)], () => CreateTableSql(ProjectNaming.Schema(projectId), table, columns, ownerColumn), ct);

    /// <summary>
    /// The columns of a table made from a CSV file: the file's columns with <paramref name="types"/> (one of <see cref="Types"/>
    /// each), <paramref name="key"/> as the primary key — or, when it names none of them, an added <c>id SERIAL</c>.
    /// </summary>
    public static IReadOnlyList<NewColumn> FileColumns(IReadOnlyList<string> header, IReadOnlyList<string> types, string? key)
    {
        var columns = header.Select((h, i) => new NewColumn(h, types[i], PrimaryKey: h == key)).ToList();
        if (!columns.Any(c => c.PrimaryKey)) columns.Insert(0, new NewColumn("id", "SERIAL", Nullable: false, PrimaryKey: true));
        return columns;
    }

    /// <summary>
    /// Creates <paramref name="table"/> with <paramref name="columns"/> and imports the CSV into it in one transaction on
    /// the owner's login: all or nothing — a bad row leaves no table, and a dry run creates and imports, reports, and rolls
    /// both back. A new table gets its secure access defaults and change capture once it is committed. Throws
    /// CsvImportException when the table cannot be made (a bad name or type, a name taken: PostgreSQL's message).
    /// </summary>
    public async Task<ImportResult> CreateAndImportAsync(string projectId, string table, IReadOnlyList<NewColumn> columns, Func<Stream> open,
        bool dryRun, CancellationToken ct = default)
    {
        var sql = table.Contains('\0') || columns.Any(c => c.Name.Contains('\0')) ? Validated<string>.Invalid(NulInName)
            : CreateTableSql(ProjectNaming.Schema(projectId), table, columns, ownerColumn: false);
        if (!sql.IsValid) throw new CsvImportException(sql.Problem!, [new ImportError(1, null, "22023", sql.Problem!)]);
        var result = await csv.ImportAsNewTableAsync(projectId, table, sql.Value, open, dryRun, ct);
        if (!dryRun && result.Errors.Count == 0) await AfterCreateAsync(projectId, ct);
        return result;
    }

    /// <summary>
    /// <see cref="CreateAndImportAsync"/> with the types inferred from the file's first 1,000 rows (as the import dialog
    /// proposes them) and its <c>id</c> column as the primary key, else an added <c>id SERIAL</c>: the import API's
    /// <c>?create=true</c>.
    /// </summary>
    public async Task<ImportResult> CreateAndImportAsync(string projectId, string table, Func<Stream> open, bool dryRun, CancellationToken ct = default)
    {
        CsvPreview preview;
        await using (var source = open()) preview = await CsvPreviewReader.ReadAsync(source, ct: ct);
        return await CreateAndImportAsync(projectId, table, FileColumns(preview.Header, preview.Types, "id"), open, dryRun, ct);
    }

    public Task<SqlError?> AddColumnAsync(string projectId, string table, NewColumn column, CancellationToken ct = default) =>
        RunAsync(projectId, [table, column.Name], () => AddColumnSql(ProjectNaming.Schema(projectId), table, column), ct);

    public Task<SqlError?> DropColumnAsync(string projectId, string table, string column, CancellationToken ct = default) =>
        RunAsync(projectId, [table, column], () => Validated<string>.Ok(DropColumnSql(ProjectNaming.Schema(projectId), table, column)), ct);

    public Task<SqlError?> DropTableAsync(string projectId, string table, CancellationToken ct = default) =>
        RunAsync(projectId, [table], () => Validated<string>.Ok(DropTableSql(ProjectNaming.Schema(projectId), table)), ct);

    public Task<SqlError?> ChangeColumnAsync(string projectId, string table, string column, ColumnChange change, CancellationToken ct = default) =>
        RunAsync(projectId, [table, column, change.NewName], () => ChangeColumnSql(ProjectNaming.Schema(projectId), table, column, change), ct);

    public Task<SqlError?> AddUniqueAsync(string projectId, string table, IReadOnlyList<string> columns, CancellationToken ct = default) =>
        RunAsync(projectId, [table, .. columns], () => AddUniqueSql(ProjectNaming.Schema(projectId), table, columns), ct);

    public Task<SqlError?> AddForeignKeyAsync(string projectId, string table, string column, string refTable, string refColumn, OnDelete onDelete,
        CancellationToken ct = default) =>
        RunAsync(projectId, [table, column, refTable, refColumn],
            () => Validated<string>.Ok(AddForeignKeySql(ProjectNaming.Schema(projectId), table, column, refTable, refColumn, onDelete)), ct);

    public Task<SqlError?> DropConstraintAsync(string projectId, string table, string constraint, CancellationToken ct = default) =>
        RunAsync(projectId, [table, constraint], () => Validated<string>.Ok(DropConstraintSql(ProjectNaming.Schema(projectId), table, constraint)), ct);

    public Task<SqlError?> CreateIndexAsync(string projectId, string table, IReadOnlyList<string> columns, bool unique, CancellationToken ct = default) =>
        RunAsync(projectId, [table, .. columns], () => CreateIndexSql(ProjectNaming.Schema(projectId), table, columns, unique), ct);

    public Task<SqlError?> DropIndexAsync(string projectId, string index, CancellationToken ct = default) =>
        RunAsync(projectId, [index], () => Validated<string>.Ok(DropIndexSql(ProjectNaming.Schema(projectId), index)), ct);

    /// <summary>
    /// The table's constraints and indexes as the catalog has them and its DDL, names as the project's SQL writes them
    /// (PostgreSQL's own deparsing:
    /// format_type, pg_get_expr, pg_get_constraintdef, pg_get_indexdef), read on the owner's login. Null when it does not exist.
    /// </summary>
    public async Task<TableDetails?> DescribeAsync(string projectId, string table, CancellationToken ct = default)
    {
        var schema = ProjectNaming.Schema(projectId);
        if (table.Contains('\0')) return null;
        await using var owner = await owners.OpenAsync(projectId, ct);
        await using var cmd = new NpgsqlCommand("""
            WITH t AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))
            SELECT 'c', con.conname, con.contype::text, pg_get_constraintdef(con.oid),
                   ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i),
                   CASE WHEN con.contype = 'f' THEN con.confrelid::regclass::text END, false
            FROM pg_constraint con, t WHERE con.conrelid = t.oid
            UNION ALL
            SELECT 'i', ic.relname, NULL, pg_get_indexdef(i.indexrelid), NULL,
                   (SELECT con.conname::text FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid), i.indisunique
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid, t WHERE i.indrelid = t.oid
            UNION ALL
            SELECT 'd', NULL, NULL, 'CREATE TABLE ' || t.oid::regclass::text || E' (\n' || string_agg(
                       '    ' || quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
                       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                       || COALESCE(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), ''), E',\n' ORDER BY a.attnum) || E'\n);', NULL, NULL, false
            FROM t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            GROUP BY t.oid
            """, owner.Connection);
        cmd.Parameters.Add(new() { Value = schema });
        cmd.Parameters.Add(new() { Value = table });
        var constraints = new List<ConstraintInfo>();
        var indexes = new List<IndexInfo>();
        string? create = null;
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                switch (r.GetString(0))
                {
                    case "c":
                        constraints.Add(new ConstraintInfo(r.GetString(1), r.GetString(2)[0], r.GetString(3), r.GetFieldValue<string[]>(4),
                            r.IsDBNull(5) ? null : r.GetString(5)));
                        break;
                    case "i":
                        indexes.Add(new IndexInfo(r.GetString(1), r.GetString(3), r.GetBoolean(6), r.IsDBNull(5) ? null : r.GetString(5)));
                        break;
                    default:
                        create = r.GetString(3);
                        break;
                }
        if (create is null) return null;
        var order = "pufc";
        constraints.Sort((a, b) => (order.IndexOf(a.Kind), a.Name).CompareTo((order.IndexOf(b.Kind), b.Name)));
        indexes.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        var qualified = SqlText.Ident(table); // as the project's SQL names it (its schema is the search path)
        var ddl = string.Join("\n", [create,
            .. constraints.Select(c => $"ALTER TABLE {qualified} ADD CONSTRAINT {SqlText.Ident(c.Name)} {c.Definition};"),
            .. indexes.Where(i => i.Constraint is null).Select(i => i.Definition + ";")]);
        return new TableDetails(constraints, indexes, ddl);
    }

    /// <summary>Runs one DDL statement as the owner; null on success, PostgreSQL's error otherwise (nothing changed).</summary>
    private Task<SqlError?> RunAsync(string projectId, string?[] names, Func<Validated<string>> build, CancellationToken ct) =>
        RunAsync(projectId, names, () => build() is { IsValid: true } one
            ? Validated<IReadOnlyList<string>>.Ok([one.Value]) : Validated<IReadOnlyList<string>>.Invalid(build().Problem!), ct);

    /// <summary>Runs DDL as the owner, several statements in one transaction; null on success, PostgreSQL's error
    /// otherwise (then nothing changed).</summary>
    private async Task<SqlError?> RunAsync(string projectId, string?[] names, Func<Validated<IReadOnlyList<string>>> build, CancellationToken ct)
    {
        // A NUL cannot be quoted into an identifier (SqlText refuses it): say so before building anything.
        var built = names.Any(n => n?.Contains('\0') == true) ? Validated<IReadOnlyList<string>>.Invalid(NulInName) : build();
        if (!built.IsValid) return new SqlError("22023", built.Problem!);
        try
        {
            await using var owner = await owners.OpenAsync(projectId, ct);
            await using var tx = built.Value.Count > 1 ? await owner.Connection.BeginTransactionAsync(ct) : null;
            foreach (var sql in built.Value)
            {
                await using var cmd = new NpgsqlCommand(sql, owner.Connection, tx);
                await cmd.ExecuteNonQueryAsync(ct);
            }
            if (tx is not null) await tx.CommitAsync(ct);
        }
        catch (PostgresException e) { return SqlError.From(e, 0) with { Position = null }; }
        await AfterCreateAsync(projectId, ct);
        return null;
    }

    private async Task AfterCreateAsync(string projectId, CancellationToken ct)
    {
        schemas.Invalidate(projectId);
        await access.EnsureAllAsync(projectId, ct); // a new table gets the secure defaults at once
        await capture.EnsureProjectAsync(projectId, ct); // and records its changes for the live stream
    }
}
