// The Schema tab's DDL: create and drop tables, add and drop columns, with the panel's 13 column types.
// Names are quoted, types come from a fixed list, defaults are SQL expressions a person typed (run as the
// project's owner role, like the console). Errors come back as PostgreSQL's, as data.
using DbStudio.Core.Access;
using DbStudio.Core.Console;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Core.Sql;
using Npgsql;
using DbStudio.Core.Catalog;

namespace DbStudio.Core.Schema;

public sealed record NewColumn(string Name, string Type, bool Nullable = true, string? Default = null, bool PrimaryKey = false);

public sealed class SchemaEditor(OwnerConnections owners, SchemaCache schemas, AccessPolicies access, Streams.ChangeCapture capture)
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
            if (StatementSplitter.Split("SELECT " + c.Default).Count != 1) return Validated<string>.Invalid("A default must be a single expression.");
            sql += $" DEFAULT {c.Default}";
        }
        return Validated<string>.Ok(sql);
    }

    public Task<SqlError?> CreateTableAsync(string projectId, string table, IReadOnlyList<NewColumn> columns, bool ownerColumn, CancellationToken ct = default) =>
        RunAsync(projectId, [table, .. columns.Select(c => c.Name)], () => CreateTableSql(ProjectNaming.Schema(projectId), table, columns, ownerColumn), ct);

    public Task<SqlError?> AddColumnAsync(string projectId, string table, NewColumn column, CancellationToken ct = default) =>
        RunAsync(projectId, [table, column.Name], () => AddColumnSql(ProjectNaming.Schema(projectId), table, column), ct);

    public Task<SqlError?> DropColumnAsync(string projectId, string table, string column, CancellationToken ct = default) =>
        RunAsync(projectId, [table, column], () => Validated<string>.Ok(DropColumnSql(ProjectNaming.Schema(projectId), table, column)), ct);

    public Task<SqlError?> DropTableAsync(string projectId, string table, CancellationToken ct = default) =>
        RunAsync(projectId, [table], () => Validated<string>.Ok(DropTableSql(ProjectNaming.Schema(projectId), table)), ct);

    /// <summary>Runs one DDL statement as the owner; null on success, PostgreSQL's error otherwise (nothing changed).</summary>
    private async Task<SqlError?> RunAsync(string projectId, string?[] names, Func<Validated<string>> build, CancellationToken ct)
    {
        // A NUL cannot be quoted into an identifier (SqlText refuses it): say so before building anything.
        var built = names.Any(n => n?.Contains('\0') == true) ? Validated<string>.Invalid(NulInName) : build();
        if (!built.IsValid) return new SqlError("22023", built.Problem!);
        var sql = built.Value;
        try
        {
            await using (var owner = await owners.OpenAsync(projectId, ct))
            await using (var cmd = new NpgsqlCommand(sql, owner.Connection))
                await cmd.ExecuteNonQueryAsync(ct);
        }
        catch (PostgresException e) { return SqlError.From(e, 0) with { Position = null }; }
        schemas.Invalidate(projectId);
        await access.EnsureAllAsync(projectId, ct); // a new table gets the secure defaults at once
        await capture.EnsureProjectAsync(projectId, ct); // and records its changes for the live stream
        return null;
    }
}
