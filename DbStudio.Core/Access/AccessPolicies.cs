// Access tab settings (DESIGN §4) and the real PostgreSQL RLS policies and grants generated from them.
// Every table gets the secure defaults before its first REST use, however it was created.
using System.Text;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using DbStudio.Core.Sql;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using DbStudio.Core.Catalog;

namespace DbStudio.Core.Access;

/// <summary>The Access tab's JSON shape (DESIGN §7).</summary>
public sealed record AccessSettings(
    bool anon_select, bool anon_insert, bool auth_insert, bool auth_select_own, bool auth_update_own, bool auth_delete_own,
    string? user_id_col)
{
    public static AccessSettings Defaults(string? userIdColumn) => new(false, false, true, true, true, true, userIdColumn);
}

public sealed class AccessPolicies(NpgsqlDataSource platform, ProjectServers servers, SchemaCache schemas, PlatformSignals signals,
    RestConnections connections, TimeProvider clock) : IDisposable
{
    /// <summary>The policies the Access tab's settings make (every other policy on a table was written by hand).</summary>
    public static readonly IReadOnlyList<string> GeneratedPolicies = [.. new[] { "anon_select", "anon_insert", "auth_insert",
        "auth_select_own", "auth_update_own", "auth_delete_own", "admin_insert", "admin_select", "admin_update", "admin_delete" }
        .Select(p => "dbstudio_" + p)];

    /// <summary>Column types an owner column may have: end-user ids are UUIDs.</summary>
    public static bool IsOwnerColumnType(ColumnInfo c) => c.TypeOid is PgType.Uuid or PgType.Text or PgType.Varchar;

    /// <summary>The settings in force per table, kept until they change (signals) or the least recently used go past the limit.</summary>
    private readonly BoundedCache<(string Project, uint TableOid), AccessSettings> _applied = new(clock, sizeLimit: 100_000);
    /// <summary>Settings are read again after this long: an idle project's go (issue 17), and a read is one indexed query.</summary>
    private static readonly TimeSpan KeepFor = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The settings in force for a table, making sure its policies exist: a table the platform has not seen
    /// (or one dropped and re-created, so RLS is off) gets its stored settings or the secure defaults first.
    /// </summary>
    public ValueTask<AccessSettings> EnsureAsync(string projectId, TableInfo table, CancellationToken ct = default) =>
        _applied.TryGet((projectId, table.Oid), out var s) ? ValueTask.FromResult(s) // the usual request: no state machine, no Task
        : !table.IsTable ? ValueTask.FromResult(AccessSettings.Defaults(null)) // views: only the DB_API_KEY reaches them
        : new ValueTask<AccessSettings>(ApplyAsync(projectId, table, ct));

    private async Task<AccessSettings> ApplyAsync(string projectId, TableInfo table, CancellationToken ct)
    {
        var stored = await StoredAsync(projectId, table, ct);
        var settings = stored ?? AccessSettings.Defaults(DefaultOwnerColumn(table));
        if (stored is null || !await RlsEnabledAsync(projectId, table.Oid, ct))
            settings = await SaveAndApplyAsync(projectId, table, settings, ct);
        _applied.Set((projectId, table.Oid), settings, KeepFor);
        return settings;
    }

    /// <summary>
    /// The stored settings of this very table: those saved for its OID, or (saved before OIDs were kept) for its name.
    /// Settings saved under its name for another table — dropped, or renamed away — are not its settings.
    /// </summary>
    private async Task<AccessSettings?> StoredAsync(string projectId, TableInfo table, CancellationToken ct)
    {
        await using var cmd = platform.CreateCommand("""
            SELECT "AnonSelect", "AnonInsert", "AuthInsert", "AuthSelectOwn", "AuthUpdateOwn", "AuthDeleteOwn", "UserIdColumn"
            FROM platform.table_access
            WHERE "ProjectId" = $1 AND ("TableOid" = $2 OR "TableOid" IS NULL AND "TableName" = $3)
            ORDER BY "TableOid" IS NULL LIMIT 1
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = projectId });
        cmd.Parameters.Add(new NpgsqlParameter { Value = table.Oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        cmd.Parameters.Add(new NpgsqlParameter { Value = table.Name });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        if (!await r.ReadAsync(ct)) return null;
        var col = r.IsDBNull(6) ? null : r.GetString(6);
        // An owner column renamed or dropped since: no own rows until it is set again.
        if (col is not null && table.Find(col) is null) col = null;
        return new AccessSettings(r.GetBoolean(0), r.GetBoolean(1), r.GetBoolean(2), r.GetBoolean(3), r.GetBoolean(4), r.GetBoolean(5), col);
    }

    /// <summary>Applies defaults to every table of the project whose RLS is off (new tables from the console, the assistant, a direct connection).</summary>
    public async Task EnsureAllAsync(string projectId, CancellationToken ct = default)
    {
        var unprotected = new List<string>();
        await using (var cmd = (await servers.OfAsync(projectId, ct)).DataSource.CreateCommand(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
            "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity"))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = ProjectNaming.Schema(projectId) });
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) unprotected.Add(r.GetString(0));
        }
        if (unprotected.Count == 0) return;
        schemas.Invalidate(projectId);
        foreach (var name in unprotected)
            if (await schemas.FindTableAsync(projectId, name, ct) is { } table)
                await EnsureAsync(projectId, table, ct);
    }

    public async Task<AccessSettings?> GetAsync(string projectId, string tableName, CancellationToken ct = default)
    {
        var table = await schemas.FindTableAsync(projectId, tableName, ct);
        return table is null || !table.IsTable ? null : await EnsureAsync(projectId, table, ct);
    }

    /// <summary>Validates, stores and applies new settings. Returns the error text for bad settings.</summary>
    public async Task<(AccessSettings? Settings, string? Error)> PutAsync(string projectId, string tableName, AccessSettings settings,
        CancellationToken ct = default)
    {
        schemas.Invalidate(projectId);
        var table = await schemas.FindTableAsync(projectId, tableName, ct);
        if (table is null || !table.IsTable) return (null, null);
        if (settings.user_id_col is { } col)
        {
            var c = table.Find(col);
            if (c is null) return (null, $"Table \"{tableName}\" has no column \"{col}\".");
            if (!IsOwnerColumnType(c)) return (null, $"Column \"{col}\" is {c.Type}; an owner column must be uuid or text.");
        }
        var applied = await SaveAndApplyAsync(projectId, table, settings, ct);
        await signals.PublishAsync(PlatformSignals.Topics.Access, projectId, ct); // other instances reload them
        _applied.Set((projectId, table.Oid), applied, KeepFor);
        return (applied, null);
    }

    public void Forget(string projectId) => _applied.RemoveWhere((key, _) => key.Project == projectId);

    public void Dispose() => _applied.Dispose();

    private static string? DefaultOwnerColumn(TableInfo t) =>
        t.Find("user_id") is { } c && IsOwnerColumnType(c) ? c.Name : null;

    private async Task<bool> RlsEnabledAsync(string projectId, uint oid, CancellationToken ct)
    {
        await using var cmd = (await servers.OfAsync(projectId, ct)).DataSource.CreateCommand("SELECT relrowsecurity FROM pg_class WHERE oid = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
        return await cmd.ExecuteScalarAsync(ct) is true;
    }

    private async Task<AccessSettings> SaveAndApplyAsync(string projectId, TableInfo table, AccessSettings s, CancellationToken ct)
    {
        var sequences = new List<string>();
        await using (var seq = (await servers.OfAsync(projectId, ct)).DataSource.CreateCommand(
            "SELECT sn.nspname, sc.relname FROM pg_depend d JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S' " +
            "JOIN pg_namespace sn ON sn.oid = sc.relnamespace WHERE d.classid = 'pg_class'::regclass " +
            "AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND d.deptype = 'a'"))
        {
            seq.Parameters.Add(new NpgsqlParameter { Value = table.Oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
            await using var r = await seq.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) sequences.Add(SqlText.Qualified(r.GetString(0), r.GetString(1)));
        }
        var ownerType = s.user_id_col is { } col ? table.Find(col)?.Type : null;
        // The policies are the table owner's DDL: run on the project's own login (DESIGN §2), in one transaction.
        var sql = GenerateSql(projectId, table.Schema, table.Name, s, ownerType, sequences);
        await connections.AsOwnerAsync(projectId, async conn =>
        {
            await using var tx = await conn.BeginTransactionAsync(ct);
            await using (var apply = new NpgsqlCommand(sql, conn, tx)) await apply.ExecuteNonQueryAsync(ct);
            await tx.CommitAsync(ct);
            return true;
        }, ct);
        // Then the settings, keyed by the table's OID as well as its name (a renamed or re-made table is told apart).
        await using var conn = await platform.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using (var gone = new NpgsqlCommand(
            """DELETE FROM platform.table_access WHERE "ProjectId" = $1 AND ("TableName" = $2 OR "TableOid" = $3)""", conn, tx))
        {
            gone.Parameters.Add(new NpgsqlParameter { Value = projectId });
            gone.Parameters.Add(new NpgsqlParameter { Value = table.Name });
            gone.Parameters.Add(new NpgsqlParameter { Value = table.Oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
            await gone.ExecuteNonQueryAsync(ct);
        }
        await using (var insert = new NpgsqlCommand("""
            INSERT INTO platform.table_access ("ProjectId", "TableName", "AnonSelect", "AnonInsert", "AuthInsert", "AuthSelectOwn",
                "AuthUpdateOwn", "AuthDeleteOwn", "UserIdColumn", "UpdatedAt", "TableOid")
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), $10)
            """, conn, tx))
        {
            foreach (var v in new object?[] { projectId, table.Name, s.anon_select, s.anon_insert, s.auth_insert, s.auth_select_own,
                         s.auth_update_own, s.auth_delete_own, s.user_id_col })
                insert.Parameters.Add(new NpgsqlParameter { Value = v ?? DBNull.Value });
            insert.Parameters.Add(new NpgsqlParameter { Value = table.Oid, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Oid });
            await insert.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        return s;
    }

    /// <summary>
    /// The RLS policies and grants for one table, shown read-only in the Access tab. The caller's id is read through
    /// a scalar sub-select, so PostgreSQL evaluates it once per statement (an InitPlan), and cast to the owner
    /// column's own type, so an index on that column applies. Admin end users have a role of their own, so the user
    /// policy needs no OR (which would rule the index out).
    /// </summary>
    public static string GenerateSql(string projectId, string schema, string table, AccessSettings s, string? ownerColumnType,
        IReadOnlyList<string>? sequences = null)
    {
        var t = SqlText.Qualified(schema, table);
        var anon = SqlText.Ident(ProjectNaming.AnonRole(projectId));
        var user = SqlText.Ident(ProjectNaming.UserRole(projectId));
        var admin = SqlText.Ident(ProjectNaming.UserAdminRole(projectId));
        // Own rows: a plain compare with the column's own type. Without an owner column, users own nothing.
        var own = s.user_id_col is { } col && ownerColumnType is not null
            ? $"{SqlText.Ident(col)} = (SELECT nullif(current_setting('request.user_id', true), '')::{ownerColumnType})"
            : "false";
        var sb = new StringBuilder();
        sb.Append($"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;\n");
        sb.Append($"REVOKE ALL ON {t} FROM {anon}, {user}, {admin};\n");
        foreach (var p in GeneratedPolicies)
            sb.Append($"DROP POLICY IF EXISTS {SqlText.Ident(p)} ON {t};\n");
        if (s.anon_select)
        {
            sb.Append($"GRANT SELECT ON {t} TO {anon}, {user}, {admin};\n");
            sb.Append($"CREATE POLICY dbstudio_anon_select ON {t} FOR SELECT TO {anon}, {user}, {admin} USING (true);\n");
        }
        if (s.anon_insert)
        {
            sb.Append($"GRANT INSERT ON {t} TO {anon};\n");
            sb.Append($"CREATE POLICY dbstudio_anon_insert ON {t} FOR INSERT TO {anon} WITH CHECK (true);\n");
        }
        // Signed-in users get each enabled verb on their own rows; admin end users get it on every row.
        void Verb(string setting, string verb, string clause)
        {
            sb.Append($"GRANT {verb} ON {t} TO {user}, {admin};\n");
            var userClause = clause.Replace("{q}", own);
            var adminClause = clause.Replace("{q}", "true");
            sb.Append($"CREATE POLICY dbstudio_{setting} ON {t} FOR {verb} TO {user} {userClause};\n");
            sb.Append($"CREATE POLICY dbstudio_admin_{verb.ToLowerInvariant()} ON {t} FOR {verb} TO {admin} {adminClause};\n");
        }
        if (s.auth_insert)
        {
            // With no owner column, an insert needs no ownership.
            var check = s.user_id_col is null ? "WITH CHECK (true)" : "WITH CHECK ({q})";
            Verb("auth_insert", "INSERT", check);
        }
        if (s.auth_select_own) Verb("auth_select_own", "SELECT", "USING ({q})");
        if (s.auth_update_own) Verb("auth_update_own", "UPDATE", "USING ({q}) WITH CHECK ({q})");
        if (s.auth_delete_own) Verb("auth_delete_own", "DELETE", "USING ({q})");
        foreach (var seq in sequences ?? [])
        {
            sb.Append($"REVOKE ALL ON SEQUENCE {seq} FROM {anon}, {user}, {admin};\n");
            var to = new List<string>();
            if (s.anon_insert) to.Add(anon);
            if (s.auth_insert) { to.Add(user); to.Add(admin); }
            if (to.Count > 0) sb.Append($"GRANT USAGE ON SEQUENCE {seq} TO {string.Join(", ", to)};\n");
        }
        return sb.ToString();
    }
}
